"""fashion_lab's Optuna sweeper, where Hydra takes plugins from (the hydra_plugins package)."""

from fashion_lab import search


class OptunaSweeper(search.StudySweeper):
    """`hydra/sweeper=optuna` (conf/hydra/sweeper/optuna.yaml): fashion_lab.search.StudySweeper."""
