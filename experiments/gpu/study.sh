#!/usr/bin/env bash
# GPU session, part 2: the fast recipe, then the dilation study (every preset x 3 seeds, nine
# jobs at once on one GPU). Run from the repository root on a CUDA machine.
#   STUDY_TIMEOUT=480 bash experiments/gpu/study.sh 2>&1 | tee study.log
set -u
log=${LOG_DIR:-outputs/gpu_probe}
show() { python -c "import json,sys; r=json.load(open(sys.argv[1])); print({k: r.get(k) for k in ('model','test_acc','train_time_s','train_images_per_s','wall_time_s')})" "$1"; }
for model in resnet dilated_v2; do
  python -m fashion_lab experiment=fast_gpu trainer=gpu model=$model model.width=16 \
    paths.log_dir="$log" trainer.enable_progress_bar=false 2>&1 | tail -n 1
  show "$(ls -td "$log"/runs/*/ | head -n 1)/results.json"
done
t=$SECONDS
timeout "${STUDY_TIMEOUT:-480}" python -m fashion_lab -m experiment=dilation_study trainer=gpu \
  hydra/launcher=parallel hydra.launcher.n_jobs=9 trainer.enable_progress_bar=false \
  hydra.sweep.dir=outputs/multiruns/dilation_study
echo "=== study exit $? after $((SECONDS - t)) s"
