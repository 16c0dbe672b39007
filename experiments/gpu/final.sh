#!/usr/bin/env bash
# GPU session, part 3: the cnn benchmark after the training-metric change, at two batch sizes,
# a profile of the framework path, and candidates for the fast recipe.
#   bash experiments/gpu/final.sh 2>&1 | tee final.log
set -u
log=${LOG_DIR:-outputs/gpu_probe}
step() { echo; echo "=== $*"; local t=$SECONDS; "$@"; echo "=== exit $? after $((SECONDS - t)) s"; }
show() { python -c "import json,sys; r=json.load(open(sys.argv[1])); print({k: r.get(k) for k in ('model','test_acc','train_time_s','train_images_per_s','wall_time_s')})" "$1"; }
step python -m fashion_lab.benchmark --epochs 4 trainer=gpu data.batch_size=1024 data.eval_batch_size=5000
step python -m fashion_lab.benchmark --epochs 4 trainer=gpu data.batch_size=4096 data.eval_batch_size=5000
step python -m fashion_lab.benchmark --epochs 3 --profile 30 trainer=gpu data.batch_size=1024 data.eval_batch_size=5000
fast() {
  python -m fashion_lab experiment=fast_gpu trainer=gpu paths.log_dir="$log" \
    trainer.enable_progress_bar=false "$@" 2>&1 | tail -n 1
  show "$(ls -td "$log"/runs/*/ | head -n 1)/results.json"
}
fast model=dilated_v2 model.width=32 trainer.max_epochs=12
fast model=resnet data.batch_size=2048 optimizer.lr=0.012 trainer.max_epochs=20
fast model=dilated_v2 model.width=24 trainer.max_epochs=15 optimizer.lr=0.01
