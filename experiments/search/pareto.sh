#!/usr/bin/env bash
# A two-objective search on the real Fashion-MNIST: best validation accuracy against multiply-adds
# per image, dilated_v2's width and learning rate swept, 8 trials of 2 epochs; its Pareto front
# is written to the sweep directory (pareto.md, pareto.png) and copied here.
#   bash experiments/search/pareto.sh
set -eu
out=$(mktemp -d)
python -m fashion_lab -m hparams_search=optuna \
  'hydra.sweeper.objectives={val_acc_best: maximize, macs_per_image: minimize}' \
  hydra.sweeper.n_trials=8 'model.width=choice(4,8,16,24)' trainer.max_epochs=2 \
  trainer.enable_progress_bar=false hydra.sweep.dir="$out/sweep"
cp "$out/sweep/pareto.md" "$out/sweep/pareto.png" "$out/sweep/optimization_results.yaml" \
  "$(dirname "$0")/"
