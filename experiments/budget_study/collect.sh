#!/bin/bash
# Copy the study's records (results.json, config.yaml, .hydra/; no checkpoints or events) into
# experiments/budget_study/runs and experiments/fast_cpu/runs, and rebuild the leaderboards.
#   bash experiments/budget_study/collect.sh [OUT]     (OUT: where run.sh wrote, outputs/budget_study)
set -eu
cd "$(dirname "$0")/../.."
out=${1:-outputs/budget_study}
python=${PYTHON:-.venv/bin/python}
for dir in "$out"/*_seed*/; do
  name=$(basename "$dir")
  case $name in *_120s_*) dest=experiments/fast_cpu/runs/$name ;; *) dest=experiments/budget_study/runs/$name ;; esac
  [ -f "$dir/results.json" ] || continue
  rm -rf "$dest" && mkdir -p "$dest"
  cp "$dir/results.json" "$dir/config.yaml" "$dest/"
  cp -r "$dir/.hydra" "$dest/"
done
cp "$out/walls.txt" experiments/budget_study/walls.txt
[ -f "$out/race.txt" ] && cp "$out/race.txt" experiments/fast_cpu/race.txt
$python -m fashion_lab.compare experiments/budget_study/runs --out experiments/budget_study \
  --against model=plain > /dev/null
mkdir -p experiments/budget_study/by_time
$python -m fashion_lab.compare experiments/budget_study/runs --out experiments/budget_study/by_time \
  --rank time --to 0.92 > /dev/null
