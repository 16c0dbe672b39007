#!/usr/bin/env bash
# GPU session 3, part 1: the GPU tests, the speed benchmarks of issue 5 after the training step
# stopped waiting for the GPU, and candidates for the 10-second recipe. Run from the repository
# root on a CUDA machine; every command prints its own figures.
#   bash experiments/gpu/speed.sh 2>&1 | tee speed.log
log=outputs/gpu_speed
source "$(dirname "$0")/common.sh"

step python -m pytest -q -p no:cacheprovider tests/test_gpu.py
bench="python -m fashion_lab.benchmark --epochs 4 trainer=gpu"
step $bench
step $bench data.batch_size=1024 data.eval_batch_size=5000
step $bench data.batch_size=1024 data.eval_batch_size=5000 module.compile=true
for m in dilated_v2 resnet; do
  step python -m fashion_lab.benchmark --epochs 2 trainer=gpu model=$m data.batch_size=256
done
# the 10-second recipe: conf/experiment/fast_gpu.yaml and variations of it
while read -r overrides; do
  echo; echo "=== fast_gpu $overrides"
  python -m fashion_lab experiment=fast_gpu trainer=gpu paths.log_dir="$log" print_config=false \
    trainer.enable_progress_bar=false $overrides 2>&1 | tail -n 1
  show "$(ls -td "$log"/runs/*/ | head -n 1)/results.json"
done <<'LIST'

model=dilated_v2 model.width=32 trainer.max_epochs=12
model=dilated_hdc model.width=32 trainer.max_epochs=10
model.width=16 data.batch_size=2048 optimizer.lr=0.012 trainer.max_epochs=20
model.width=24 trainer.max_epochs=12
model.width=16 module.label_smoothing=0.0 trainer.max_epochs=15
LIST
