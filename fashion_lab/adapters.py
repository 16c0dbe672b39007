"""The private internals of other libraries that fashion_lab uses, each in one function here and
each pinned by tests/test_adapters.py, which fails when an upgrade changes it."""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch


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


def optuna_job_trial(study: Any, job: int) -> Any:
    """The live trial that sweep job `job` runs: trial `job`, or the running trial that retries
    it (a retry continues in the first trial's job directory, `fashion_lab.search`)."""
    from optuna.trial import TrialState

    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if frozen.system_attrs.get("failed_trial", frozen.number) == job:
            return optuna_trial(study, frozen.number)
    return optuna_trial(study, job)


def uncompiled_key(key: str) -> str:
    """A state-dict key of a `torch.compile`d network as the plain network names it: the
    compiled wrapper nests the network under `_orig_mod`."""
    return key.replace("_orig_mod.", "")


def in_this_process(launcher: Any) -> bool:
    """Whether a Hydra launcher runs its jobs in this process (its basic launcher, which lives
    in Hydra's internal core plugins)."""
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    return isinstance(launcher, BasicLauncher)


def optuna_trial_id(trial: Any) -> int:
    """The storage's id of an Optuna trial, which its heartbeat is recorded under (Optuna's
    public API gives trials by number)."""
    return trial._trial_id


def cpu_bf16_flags() -> bool:
    """Whether torch reports bf16 matrix units (AMX) or instructions (avx512_bf16) on this CPU:
    its `torch.cpu._is_*_supported` checks, absent from some builds (then False)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def submitit_timed_out(handler: Callable[[int, Any], None]) -> bool:
    """Whether submitit's signal handler (a bound method of its job's signal handler object)
    takes the signal for the job's time limit rather than a preemption; it logs its reckoning."""
    return bool(handler.__self__.has_timed_out())


def submitit_controllers_ignore_ctrl_c() -> None:
    """Have submitit start its local job controllers with Ctrl-C ignored (an ignored signal
    stays ignored in the programs a process starts; the jobs they run take it back): its
    `local.start_controller`, wrapped once, for a parallel sweep's stop (`fashion_lab.sweep`)."""
    from submitit.local import local

    start = local.start_controller
    if getattr(start, "ignores_ctrl_c", False):
        return

    @functools.wraps(start)
    def start_controller(*args: Any, **kwargs: Any) -> Any:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return start(*args, **kwargs)
        finally:
            signal.signal(signal.SIGINT, previous)

    start_controller.ignores_ctrl_c = True
    local.start_controller = start_controller
