#!/bin/bash
# The budget study: each architecture under experiment=fast_cpu's recipe and 300 s budget, at
# its width 16 (plain: fast_cpu itself, the dilated backbone with every dilation 1), seeds 0, 1,
# 2, each run a cold process with the machine to itself (never two at once).
#   bash experiments/budget_study/run.sh [OUT]        (OUT: outputs/budget_study)
# Runs go seed by seed, so a study cut short has every architecture at the same seeds. A run
# whose results.json says completed is not run again; while OUT/PAUSE exists, the next run
# waits (so that nothing else shares the machine with a run).
set -u
cd "$(dirname "$0")/../.."
out=${1:-outputs/budget_study}
mkdir -p "$out"
python=${PYTHON:-.venv/bin/python}

declare -A arch=(
  [plain]=""
  [dilated_v1]="model=dilated_v1"
  [dilated_v2]="model=dilated_v2"
  [dilated_hdc]="model=dilated_hdc"
  [dilated_degrid]="model=dilated_degrid"
  [cnn]="model=cnn ~model.width"
  # not in the study: fast_cpu with 120 s (ORDER=plain_120s)
  [plain_120s]="budget_s=120"
)
order=${ORDER:-"plain dilated_v1 dilated_v2 dilated_hdc dilated_degrid cnn"}

for seed in ${SEEDS:-0 1 2}; do
  for name in $order; do
    dir="$out/${name}_seed$seed"
    if grep -qs '"status": "completed"' "$dir/results.json"; then continue; fi
    while [ -e "$out/PAUSE" ]; do sleep 5; done
    rm -rf "$dir"
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    $python -m fashion_lab experiment=fast_cpu seed="$seed" ${arch[$name]} \
      hydra.run.dir="$dir" print_config=false trainer.enable_progress_bar=false \
      > "$out/${name}_seed$seed.log" 2>&1
    rc=$?
    echo "$name seed $seed rc=$rc wall_s=$(echo "$(date +%s.%N) - $start" | bc)" >> "$out/walls.txt"
  done
done
echo "study done" >> "$out/walls.txt"
