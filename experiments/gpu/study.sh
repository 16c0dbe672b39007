#!/usr/bin/env bash
# GPU session: the dilation study (every preset x 3 seeds, nine jobs at once on one GPU), in two
# halves of nine runs because the device lent to a session runs at most 10 minutes a command.
# Run from the repository root on a CUDA machine:
#   bash experiments/gpu/study.sh 2>&1 | tee study.log
set -u
half() {
  local name=$1 models=$2 t=$SECONDS
  timeout "${STUDY_TIMEOUT:-545}" python -m fashion_lab -m experiment=dilation_study trainer=gpu \
    hydra/launcher=parallel hydra.launcher.n_jobs=9 trainer.enable_progress_bar=false \
    hydra.sweep.dir="outputs/multiruns/study_$name" model="$models"
  echo "=== study_$name exit $? after $((SECONDS - t)) s"
}
half heavy dilated_hdc,dilated_degrid,resnet
half light cnn,dilated_v1,dilated_v2
python -m fashion_lab.compare outputs/multiruns/study_heavy outputs/multiruns/study_light
