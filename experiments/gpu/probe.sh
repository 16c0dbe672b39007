#!/usr/bin/env bash
# GPU session, part 1: correctness of trainer.gpus=1, the speed benchmarks of issue 5, the fast
# recipe, throughput probes of the study's models, and a pilot of the study recipe.
# (First GPU session. Its fast_gpu line ran the recipe as it was then, resnet at width 16 with
# crops; conf/experiment/fast_gpu.yaml has changed since: see experiments/benchmark/RESULTS.md.)
# Run from the repository root on a CUDA machine; every command prints its own figures.
#   bash experiments/gpu/probe.sh 2>&1 | tee probe.log
set -u
log=${LOG_DIR:-outputs/gpu_probe}
mkdir -p "$log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__)"
step() { echo; echo "=== $*"; local t=$SECONDS; "$@"; echo "=== exit $? after $((SECONDS - t)) s"; }

# the brief's command, shortened to 2 epochs
step python -m fashion_lab model=dilated_v2 trainer.gpus=1 trainer.max_epochs=2 paths.log_dir="$log"
# issue 5: cnn at the CPU's batch size, at a GPU batch size, and without the resident dataset
step python -m fashion_lab.benchmark --epochs 4 trainer=gpu
step python -m fashion_lab.benchmark --epochs 4 trainer=gpu data.batch_size=1024 data.eval_batch_size=5000
step python -m fashion_lab.benchmark --epochs 4 trainer=gpu data.batch_size=1024 data.eval_batch_size=5000 data.device_resident=false
step python -m fashion_lab experiment=fast_gpu trainer=gpu paths.log_dir="$log"
# the study's models at its batch size
for m in resnet dilated_degrid dilated_v2; do
  step python -m fashion_lab.benchmark --epochs 2 trainer=gpu model=$m data.batch_size=256
done
# pilot of the study recipe: two models in parallel on the one GPU
python -m fashion_lab experiment=dilation_study model=resnet trainer=gpu paths.log_dir="$log" \
  trainer.enable_progress_bar=false > "$log/pilot_resnet.txt" 2>&1 &
python -m fashion_lab experiment=dilation_study model=dilated_v2 trainer=gpu paths.log_dir="$log" \
  trainer.enable_progress_bar=false > "$log/pilot_v2.txt" 2>&1 &
t=$SECONDS; wait; echo "=== pilots done after $((SECONDS - t)) s"
tail -n 3 "$log"/pilot_*.txt
step python -m fashion_lab.benchmark --epochs 4 trainer=gpu data.batch_size=1024 data.eval_batch_size=5000 module.compile=true
