#!/bin/bash
# Everything experiments/fast_cpu/README.md reports, one process at a time (about 1 h 45 on two
# cores): the budget study (fast_cpu itself is its `plain` row), fast_cpu under 120 s (seed 0),
# and the time-to-accuracy benchmark against the Keras peer.
#   bash experiments/fast_cpu/run.sh [OUT]        (OUT: outputs/budget_study)
set -u
cd "$(dirname "$0")/../.."
out=${1:-outputs/budget_study}
python=${PYTHON:-.venv/bin/python}
keras=${KERAS_PYTHON:-/tmp/kerasenv/bin/python}
bash experiments/budget_study/run.sh "$out"
ORDER=plain_120s SEEDS=0 bash experiments/budget_study/run.sh "$out"
while [ -e "$out/PAUSE" ]; do sleep 5; done
$python -m fashion_lab.benchmark --budget 300 --keras-python "$keras" > "$out/race.txt" 2>&1
echo "race rc=$?" >> "$out/walls.txt"
