"""The private internals of other libraries that fashion_lab uses, each in one function here and
each pinned by tests/test_adapters.py, which fails when an upgrade changes it."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl


def count_stepped_batches(trainer: pl.Trainer, extra: int) -> None:
    """Add `extra` to Lightning's count of optimizer-stepping batches (the x-axis of its logs,
    kept in checkpoints), for training calls that make several optimizer steps
    (`module.steps_per_call`): Lightning counts one per call."""
    trainer.fit_loop.epoch_loop._batches_that_stepped += extra


def has_trainer(module: pl.LightningModule) -> bool:
    """Whether `module` is attached to a Trainer (its `trainer` property raises otherwise)."""
    return module._trainer is not None


def tensorboard_file_writer(experiment: Any) -> Any:
    """The FileWriter under a TensorBoard SummaryWriter: hparams summaries are written to it
    directly, so that they land in the run's own event file, not in a new subfolder."""
    return experiment._get_file_writer()


def locate(path: str) -> Any:
    """The object a `_target_` names, imported as `hydra.utils.instantiate` would; unlike
    `hydra.utils.get_object` it logs nothing when that fails (the caller says it once)."""
    from hydra._internal.utils import _locate

    return _locate(path)


def optuna_trial(study: Any, number: int) -> Any:
    """Trial `number` of an Optuna study, live (report, should_prune) in another process than
    the one that asked for it: Optuna's public API gives trials by number only frozen."""
    import optuna

    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.trial.Trial(study, trial_id)
