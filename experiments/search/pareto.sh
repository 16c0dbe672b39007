#!/usr/bin/env bash
# A two-objective search on the real Fashion-MNIST: best validation accuracy against multiply-adds
# per image, the cnn's hidden units and learning rate swept, 10 trials of 2 epochs; its Pareto
# front (pareto.md, pareto.png, optimization_results.yaml) is copied here.
#   bash experiments/search/pareto.sh
set -eu
out=$(mktemp -d)
python -m fashion_lab -m hydra/sweeper=optuna \
  'hydra.sweeper.objectives={val_acc_best: maximize, macs_per_image: minimize}' \
  hydra.sweeper.n_trials=10 hydra.sweeper.pruner=null \
  'model.hidden=choice(8,16,32,64,128,256)' 'optimizer.lr=tag(log,interval(0.001,0.01))' \
  trainer.max_epochs=2 trainer.enable_progress_bar=false hydra.sweep.dir="$out/sweep"
cp "$out/sweep/pareto.md" "$out/sweep/pareto.png" "$out/sweep/optimization_results.yaml" \
  "$(dirname "$0")/"
