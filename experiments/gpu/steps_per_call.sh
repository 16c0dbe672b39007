#!/usr/bin/env bash
# GPU session 4 (issue 5): what module.steps_per_call does on the GPU. Run from the repository
# root on a CUDA machine (under 10 minutes on an H100); every command prints its own figures.
#   bash experiments/gpu/steps_per_call.sh 2>&1 | tee steps_per_call.log
log=outputs/gpu_steps_per_call
source "$(dirname "$0")/common.sh"

step python -m pytest -q -p no:cacheprovider tests/test_gpu.py
# the issue's cnn figure: batch 1024, one to sixteen optimizer steps per Lightning step
bench="python -m fashion_lab.benchmark --epochs 4 trainer=gpu data.batch_size=1024 data.eval_batch_size=5000"
for k in 1 4 8 16; do step $bench module.steps_per_call=$k; done
step $bench module.steps_per_call=1 optimizer.fused=false  # what the fused optimizer does there
step python -m fashion_lab.benchmark --epochs 4 trainer=gpu module.steps_per_call=8
for m in dilated_v2 resnet; do
  step python -m fashion_lab.benchmark --epochs 2 trainer=gpu model=$m data.batch_size=256 module.steps_per_call=4
done
# the 10-second recipe with and without several steps per call
for k in 1 8; do
  for seed in 0 1 2; do
    echo; echo "=== fast_gpu seed=$seed module.steps_per_call=$k"
    python -m fashion_lab experiment=fast_gpu trainer=gpu seed=$seed module.steps_per_call=$k \
      paths.log_dir="$log" print_config=false trainer.enable_progress_bar=false 2>&1 | tail -n 1
    show "$(ls -td "$log"/runs/*/ | head -n 1)/results.json"
  done
done
