#!/usr/bin/env bash
# The README's TensorBoard screenshot, taken from real runs by headless Chromium (Debian's
# `apt-get install chromium`). Run from the repository root, in the project's environment:
#   bash experiments/tensorboard/screenshot.sh
set -euo pipefail
sweep=outputs/multiruns/screenshot
out=${OUT_PNG:-experiments/tensorboard/dashboard.png}
port=${PORT:-6123}
# two models side by side: 4 epochs on a quarter of the training set each (about a minute on CPU)
[ -f "$sweep/multirun.yaml" ] || python -m fashion_lab -m model=cnn,dilated_v2 trainer.max_epochs=4 \
  trainer.limit_train_batches=0.25 trainer.enable_progress_bar=false hydra.sweep.dir="$sweep"
tensorboard --logdir "$sweep" --port "$port" > /dev/null 2>&1 &
board=$!
trap 'kill $board' EXIT
for _ in $(seq 60); do curl -sf "http://localhost:$port/data/runs" > /dev/null && break; sleep 1; done
# the scalars dashboard, training and validation loss and accuracy, no smoothing
url="http://localhost:$port/#scalars&tagFilter=%5E(train%7Cval)%2F(acc%7Closs)%24&_smoothingWeight=0&_ignoreYOutliers=false"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,820 \
  --virtual-time-budget=20000 --screenshot="$out" "$url" 2> /dev/null
echo "wrote $out"
