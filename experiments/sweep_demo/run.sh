#!/usr/bin/env bash
# A 3-model x 2-seed sweep at a tiny budget (experiment=quick: 1 epoch on a tenth of the
# training set) in which one job fails, then the same command again.
#   bash experiments/sweep_demo/run.sh      (with the project's environment active)
# The failure is real: job 3 (dilated_v1, seed 1) finds a damaged last.ckpt in its directory,
# as a killed job on a failing disk would leave, so it cannot continue and fails; the second run
# skips the 5 completed jobs and runs the failed one again from scratch.
set -u
cd "$(dirname "$0")/../.."
sweep=outputs/multiruns/sweep_demo
rm -rf "$sweep"
job3="$sweep/3_experiment=quick,model=dilated_v1,seed=1"
mkdir -p "$job3/checkpoints"
echo "a damaged checkpoint" > "$job3/checkpoints/last.ckpt"

sweep_cmd=(python -m fashion_lab -m experiment=quick model=cnn,dilated_v1,dilated_v2 seed=0,1
           trainer.enable_progress_bar=false "hydra.sweep.dir=$sweep")
echo "== first run: ${sweep_cmd[*]}"
start=$(date +%s.%N)
"${sweep_cmd[@]}" 2>&1 | grep -E "^Sweep|^  failed|^Error" ; echo "exit code: ${PIPESTATUS[0]}"
echo "seconds: $(echo "$(date +%s.%N) - $start" | bc)"
echo "job directories: $(ls -d "$sweep"/*/ | wc -l)"
echo "== python -m fashion_lab.compare $sweep"
python -m fashion_lab.compare "$sweep"
echo "== second run, the same command"
start=$(date +%s.%N)
"${sweep_cmd[@]}" 2>&1 | grep -E "^Sweep|^  failed|^Error|^Skipping" ; echo "exit code: ${PIPESTATUS[0]}"
echo "seconds: $(echo "$(date +%s.%N) - $start" | bc)"
echo "== python -m fashion_lab.compare $sweep"
python -m fashion_lab.compare "$sweep"
