"""The training task: config -> plan -> objects -> fit -> test -> results on disk.

`python -m fashion_lab [overrides]` runs it once; `-m` runs a sweep, one directory per job.
The run's life around the pipeline (lock, signals, status, results.json) is
`fashion_lab.life.RunRecord`'s; `main` is the command's one error boundary.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from fashion_lab import build, receptive, search, stops
from fashion_lab.budget import TimeBudget
from fashion_lab.callbacks import (
    ConfigPrinter,
    FirstStep,
    RunRecorder,
    job_pruning,
    network_files,
)
from fashion_lab.config import CONFIG_DIR, check_config_dir, config_tree
from fashion_lab.data import FashionMNISTDataModule
from fashion_lab.errors import RunInterrupted, UserError, no_space, one_sentence
from fashion_lab.life import RunRecord
from fashion_lab.logs import log_to_file, say_error, user_wants_tracebacks
from fashion_lab.module import AtChance, LitClassifier, no_better_than_chance
from fashion_lab.plan import Plan, resolve
from fashion_lab.results import float_metrics, log_hparams
from fashion_lab.resume import stopped_early
from fashion_lab.runlock import Refused
from fashion_lab.sweep import SweepEnded

log = logging.getLogger(__name__)


def pipeline(run: RunRecord) -> None:
    """One run: config -> plan -> objects -> fit -> test; its figures into `run.results`."""
    plan = resolve(run.cfg, run.start)
    run.planned(plan)
    parts = assemble(plan, run.recorder)
    run.results.update(parts.described())
    metrics = fit(parts, plan, run.results) if plan.cfg.train else {}
    if plan.cfg.test:  # the fit's best weights, or with train=false the checkpoint named
        best = run.results.get("best_checkpoint") if plan.cfg.train else plan.start.resume
        metrics |= test(parts, best)
        run.results["test_split_images"] = len(parts.datamodule.split("test")[1])
        run.results["test_images"] = int(parts.module.confusion["test"].sum())
    run.results.update(figures(metrics))
    final = {k: metrics[k] for k in ("val/acc_best", "test/acc") if k in metrics}
    log_hparams(parts.trainer, plan.config, final)


def train(cfg: DictConfig) -> dict[str, Any] | None:
    """Fit and test one configuration; results.json is written whether it completes, fails or
    is interrupted. Returns the record (None for a sweep job that did not run or failed). The
    run's clock (its time to accuracy, its `budget_s`) starts with this call."""
    return RunRecord(cfg, started=time.time()).live(pipeline)


@dataclass(frozen=True)
class Parts:
    """The objects a plan builds, each once."""

    datamodule: FashionMNISTDataModule
    module: LitClassifier
    trainer: pl.Trainer
    recorder: RunRecorder
    first_step: FirstStep
    budget: TimeBudget | None = None

    def described(self) -> dict[str, Any]:
        """What the record says of them: size, device, precision, batches, time budget."""
        return {
            "budget_s": self.budget.seconds if self.budget else None,
            "parameters": sum(p.numel() for p in self.module.net.parameters()),
            "macs_per_image": macs_per_image(self.module.net),
            "device": str(self.trainer.strategy.root_device),
            "precision": str(self.trainer.precision),
            "batch_size": self.datamodule.batch_size,
            "steps_per_call": self.module.steps_per_call,
        }


def macs_per_image(net: torch.nn.Module) -> int | None:
    """The network's multiply-adds per 28x28 image, counted on a copy in eval mode (the run's
    own batch-norm statistics stay untouched); None for a network fx cannot trace."""
    try:
        return receptive.summary(copy.deepcopy(net).eval())["macs"]
    except Exception:  # a compiled or untraceable network: not counted
        return None


def assemble(plan: Plan, recorder: RunRecorder) -> Parts:
    """The plan's objects: callbacks, then (seeded) network, module, Trainer and DataModule."""
    cfg, settings, start = plan.cfg, plan.settings, plan.start
    callbacks: list[pl.Callback] = [recorder]
    tree = config_tree(cfg) if cfg.print_config and not start.sweeping else None
    speed = settings.speed
    line = speed.line(f"{cfg.model_name} at batch {cfg.data.batch_size}") if speed else None
    if tree is not None or line:
        callbacks.append(ConfigPrinter(tree, line))
    callbacks += build.seeding(cfg.seed)  # before the network: its weights come from the seed
    if start.sweeping and cfg.train and (pruning := job_pruning()) is not None:
        callbacks.append(pruning)
    budget = time_budget(plan, recorder.started)
    net = build.network(cfg.model)
    first_step = FirstStep(network_files(net), list(start.overrides), plan.config)
    module = build.module(cfg, net, settings, plan.config, budget)
    trainer = build.trainer(cfg, settings, [*callbacks, first_step, *filter(None, [budget])])
    datamodule = build.datamodule(cfg, settings.steps_per_call, plan.splits)
    return Parts(datamodule, module, trainer, recorder, first_step, budget)


def time_budget(plan: Plan, started: float) -> TimeBudget | None:
    """The run's time budget (`budget_s`; a resume has none: plan.checked_config refuses it),
    or None."""
    if plan.cfg.budget_s is None or not plan.cfg.train:
        return None
    test_images = len(plan.splits.tensors["test"][1]) if plan.cfg.test else 0
    return TimeBudget(
        plan.cfg.budget_s, test_images, plan.cfg.data.eval_batch_size, started=started
    )


def fit(parts: Parts, plan: Plan, results: dict[str, Any]) -> dict[str, float]:
    """Train from the plan's start; the validation figures come from the run's whole record,
    which a resume restores even when it has no epoch left to validate.

    Raises:
        UserError: an error before the first step and epoch were done, said in a sentence (its
            traceback goes to the run's log), or a run that learned nothing (AtChance).
    """
    trainer, recorder = parts.trainer, parts.recorder
    try:
        trainer.fit(parts.module, parts.datamodule, ckpt_path=plan.start.resume, weights_only=True)
    except Exception as e:  # what the built objects meet first, said in a sentence
        if not parts.first_step.watching or isinstance(e, UserError | search.Pruned) or no_space(e):
            raise
        raise UserError(parts.first_step.explain(e)) from e
    metrics = float_metrics(trainer.callback_metrics)
    if validated := recorder.validated_epochs:
        metrics["val/acc"] = validated[-1]["val/acc"]
        metrics["val/loss"] = validated[-1]["val/loss"]
        metrics["val/acc_best"] = max(h["val/acc"] for h in validated)
    results["epochs"] = trainer.current_epoch
    if parts.budget is not None:
        results["budget_ran_out"] = parts.budget.ran_out
    classes = len(parts.module.class_names)
    steps = trainer.global_step
    if why := no_better_than_chance(
        metrics.get("val/acc_best"), plan.cfg.data.val_size, classes, steps
    ):
        raise AtChance(
            f"{why}: the run learned nothing; change the learning rate (this run's "
            f"optimizer.lr={plan.cfg.optimizer.get('lr')}) or the optimizer (optimizer=adam), "
            "and check that the network's output depends on its input."
        )
    results["stopped_early_at_epoch"] = stopped_early(
        {cb.state_key: cb.state_dict() for cb in trainer.early_stopping_callbacks}
    )
    results["best_checkpoint"] = trainer.checkpoint_callback.best_model_path or None
    return metrics


def test(parts: Parts, checkpoint: Any) -> dict[str, float]:
    """The test split's figures with `checkpoint`'s weights (the best one a fit saved)."""
    metrics: dict[str, float] = {}
    for tested in parts.trainer.test(
        parts.module, parts.datamodule, ckpt_path=checkpoint, verbose=False, weights_only=True
    ):
        metrics.update(float_metrics(tested))
    return metrics


def figures(metrics: dict[str, float]) -> dict[str, Any]:
    """The record's figures from the logged metrics (fewer test images than the split, with
    trainer.limit_test_batches, are said beside them)."""
    return {
        "val_acc": metrics.get("val/acc"),
        "val_acc_best": metrics.get("val/acc_best"),
        "val_loss": metrics.get("val/loss"),
        "test_acc": metrics.get("test/acc"),
        "test_loss": metrics.get("test/loss"),
        "test_acc_per_class": {
            k.rsplit("/", 1)[-1]: v for k, v in metrics.items() if k.startswith("test/acc_class/")
        },
    }


class TaskEnded(BaseException):
    """A single run's error, carried past Hydra (which would log it as a failed job) to `main`
    as its cause: `main` says it, and tells a bug in the task from the command line's errors,
    which Hydra raises before the task."""


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def task(cfg: DictConfig) -> float | None:
    """Hydra's task function: one run or sweep job; returns val/acc_best (for sweepers)."""
    record = RunRecord(cfg)
    try:
        record.live(pipeline)
    except Exception as e:
        raise TaskEnded() from e
    return record.objective


LOKY_TRACKER_WARNINGS = "ignore::UserWarning:joblib.externals.loky.backend.resource_tracker"
"""The parallel launcher's helper process can warn of a "leaked semlock" after Ctrl-C, below
the line that says how to continue; nothing is lost and nothing is for the user to do."""


def quiet_launcher_helpers() -> None:
    """Have the processes started from here (the launcher's helpers) drop LOKY_TRACKER_WARNINGS."""
    earlier = os.environ.get("PYTHONWARNINGS")
    if LOKY_TRACKER_WARNINGS not in (earlier or ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (earlier, LOKY_TRACKER_WARNINGS)))


def refusal(error: Exception) -> str:
    """The sentence for an error raised before the task started: Hydra's or OmegaConf's refusal
    of the command line or a config file, or an output directory it cannot create."""
    if (full := no_space(error)) is not None:
        return (
            f"No space left on the disk that holds {full.filename or 'the outputs'} before the "
            "run started; free space there (or set paths.log_dir to a disk with room), then run "
            "the command again."
        )
    if isinstance(error, OSError) and error.filename:
        return (
            f"Cannot write the outputs to {error.filename} ({error.strerror}); set "
            "hydra.run.dir (hydra.sweep.dir with -m) or paths.log_dir to a directory you can "
            "write to."
        )
    return one_sentence(error)


def quiet_full_disk_threads() -> None:
    """A writer thread (TensorBoard's) that meets a full disk leaves its traceback in the log
    file, not on the console: the run's own sentence says what happened and what to do."""
    import threading

    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if no_space(args.exc_value) is None:
            previous(args)
            return
        trace = "".join(traceback.format_exception(args.exc_value))
        log_to_file(f"A writer thread met a full disk:\n{trace}", log)

    threading.excepthook = hook


def main() -> None:
    """Entry point of `python -m fashion_lab` and `fashion-lab`: the command's one error
    boundary. Hydra parses the command line and composes the config; what it refuses before the
    task starts, and what the run ends in, is said in one sentence with a non-zero exit
    (HYDRA_FULL_ERROR=1 shows the traceback)."""
    from fashion_lab.logs import quiet_lightning

    full_error = user_wants_tracebacks()
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises, and this boundary says it
    quiet_launcher_helpers()
    quiet_lightning()
    logging.raiseExceptions = False  # a log file on a full disk: no traceback per message
    quiet_full_disk_threads()
    try:
        check_config_dir()
        with stops.stop_on_signals():
            task()
    except KeyboardInterrupt as e:  # outside a job: Hydra starting, or a launcher waiting
        ended(e)
    except TaskEnded as e:
        said(e.__cause__)
    except Refused as e:
        said(UserError(str(e)))
    except SweepEnded as e:
        ended(e.stopped_by, e.sweep_dir) if e.interrupted else sys.exit(1)
    except Exception as e:
        if full_error or isinstance(e, UserError | RunInterrupted):
            said(e)
        say_error(f"Error: {refusal(e)}")
        sys.exit(2)


def said(error: BaseException) -> None:
    """Exit on an error the command cannot go on from: a UserError's sentence (exit 2), an
    interrupted run's (128 + the signal); any other is a bug, shown with its traceback."""
    if isinstance(error, RunInterrupted):
        say_error(str(error))
        sys.exit(stops.exit_code(error.stop))
    if isinstance(error, UserError):
        say_error(f"Error: {error}")
        sys.exit(2)
    raise error from None


def ended(stop: BaseException | None, sweep_dir: str | None = None) -> None:
    """Exit a command stopped outside a run (a sweep's launcher, Hydra starting), saying how to
    go on: a sweep run again in its directory skips the completed jobs."""
    again = (
        f"run the same command again with hydra.sweep.dir={sweep_dir} to skip the completed "
        "jobs and continue the others from their last checkpoints"
        if sweep_dir
        else "run the command again"
    )
    say_error(f"{stops.opening(stop)}; {again}.")
    sys.exit(stops.exit_code(stop))
