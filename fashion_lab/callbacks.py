"""Callbacks: the measures of a run for its results.json, per-epoch seeding, the progress bar,
the printed config, and an Optuna trial's pruning."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichProgressBar

from fashion_lab import search
from fashion_lab.budget import process_start, since_start
from fashion_lab.errors import named_options, settings_to_change

log = logging.getLogger(__name__)

ACCURACY_MARKS = (0.90, 0.91, 0.92, 0.93)
"""The validation accuracies whose first time a run's record keeps (`time_to_val_acc_s`)."""


def _scalar(value) -> float | None:
    return float(value) if isinstance(value, (torch.Tensor, float, int)) else None


class RunRecorder(pl.Callback):
    """Training time and images/s (training batches only, no validation), per-epoch metrics,
    and whether the user interrupted the run.

    Each history entry also holds `epoch_s`, the epoch's wall time with its validation, and
    `elapsed_s`, the seconds from the run's start (its process's, or `started`) to the epoch's end.
    """

    def __init__(self, started: float | None = None) -> None:
        self.started = process_start() if started is None else started
        self.train_seconds = 0.0
        self.train_seconds_per_epoch: list[float] = []
        self.train_images = 0
        self.history: list[dict[str, float | int | None]] = []
        self._epoch_start = 0.0
        self._timing = False  # an epoch's training time is being measured
        self._validated = False  # the epoch under way was validated
        self._stage: str | None = None
        # Ctrl-C or a stop signal (a KeyboardInterrupt: Lightning then exits with SystemExit(1))
        self.interrupted: KeyboardInterrupt | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._stage = stage

    def _sync(self, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync(pl_module)
        self._epoch_start = time.perf_counter()
        self._timing = True

    def _end_timing(self, pl_module: pl.LightningModule) -> None:
        """Add the time since the epoch started to the training time (once an epoch)."""
        if not self._timing:
            return
        self._sync(pl_module)
        seconds = time.perf_counter() - self._epoch_start
        self.train_seconds += seconds
        self.train_seconds_per_epoch.append(seconds)
        self._timing = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        # the images trained on: a call of grouped batches [m, B] that `max_steps` stops
        # part-way trains on fewer than it holds
        images = getattr(pl_module, "call_images", None)
        if images is None:
            images = batch[1].numel()
        self.train_images += images * trainer.world_size
        step_limit = trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps
        if batch_idx == trainer.num_training_batches - 1 or step_limit:
            self._end_timing(pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # an epoch stopped part-way otherwise (`max_time`, a callback): its time, validation
        # included if it ran, rather than none
        self._end_timing(pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validated = not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning validates before this hook; an epoch it did not validate
        # (`check_val_every_n_epoch`, `max_steps` mid-epoch) records None, not the last figures
        metrics = trainer.callback_metrics if self._validated else {}
        self._validated = False
        self._sync(pl_module)
        epoch_s = round(time.perf_counter() - self._epoch_start, 3)
        self.history.append(
            {"epoch": trainer.current_epoch, "epoch_s": epoch_s}
            | {"elapsed_s": round(since_start(self.started), 2)}
            | {key: _scalar(metrics.get(key)) for key in ("val/acc", "val/loss")}
        )

    def on_exception(self, trainer: pl.Trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.interrupted = exception

    @property
    def validated_epochs(self) -> list[dict[str, float | int | None]]:
        """The history's entries of the epochs Lightning validated."""
        return [h for h in self.history if h.get("val/acc") is not None]

    def figures(self) -> dict[str, Any]:
        """What results.json takes from the fit, however it ended: its speed (None, not 0, for
        a run that trained nothing: compare skips those), its history and its best epoch."""
        speed = self.images_per_second
        figures: dict[str, Any] = {
            "train_time_s": round(self.train_seconds, 2) if speed else None,
            "train_images_per_s": round(speed, 1) if speed else None,
            "history": self.history,
        }
        if self.validated_epochs:
            best = max(self.validated_epochs, key=lambda h: h["val/acc"])
            figures.update(best_epoch=best["epoch"], best_val_acc=best["val/acc"])
        figures["time_to_val_acc_s"] = time_to_accuracy(self.history)
        return figures

    @property
    def images_per_second(self) -> float | None:
        return self.train_images / self.train_seconds if self.train_seconds > 0 else None

    def state_dict(self) -> dict:
        return {
            "train_seconds": self.train_seconds,
            "train_images": self.train_images,
            "history": self.history,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        # Resuming a fit continues the record; testing a checkpoint must not rewind it.
        if self._stage != "fit":
            return
        self.train_seconds = state_dict["train_seconds"]
        self.train_images = state_dict["train_images"]
        self.history = list(state_dict["history"])


def time_to_accuracy(history: list[dict[str, Any]]) -> dict[str, float]:
    """The wall seconds from the run's start at which validation accuracy first reached
    each of `ACCURACY_MARKS` ("0.93": 212.4), from a run's history; a mark never reached is
    left out, and so is one reached after a resume (where the clock starts again)."""
    reached: dict[str, float] = {}
    last_wall = 0.0
    for entry in history:
        acc, wall = entry.get("val/acc"), entry.get("elapsed_s")
        if wall is None or wall < last_wall:
            break
        last_wall = wall
        for mark in ACCURACY_MARKS:
            if acc is not None and acc >= mark:
                reached.setdefault(f"{mark:.2f}", wall)
    return reached


class EpochSeeder(pl.Callback):
    """Reseeds torch at each epoch start, so an epoch's randomness (dropout, augmentation)
    depends only on (seed, epoch): a run resumed from a checkpoint replays the same epochs.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.manual_seed(self.seed * 100_003 + trainer.current_epoch)


class StepProgressBar(RichProgressBar):
    """Lightning's rich progress bar, counting batches (optimizer steps), not training calls.

    Under `module.steps_per_call` K > 1 each Lightning training step holds up to K batches;
    Lightning's own bar would count those calls, a quarter of the epoch's batches at K=4.

    It redraws at most `refresh_rate` times a second, in Jupyter too, where Lightning redraws
    twice after every training call (in a terminal its own thread paces them).
    """

    _last_redraw = -float("inf")

    def refresh(self, hard: bool = False) -> None:
        now = time.monotonic()
        if hard or now - self._last_redraw >= 1 / self.refresh_rate:
            self._last_redraw = now
            super().refresh(hard)

    def _steps_per_call(self) -> int:
        return getattr(self.trainer.lightning_module, "steps_per_call", 1)

    @property
    def total_train_batches(self) -> int | float:
        if self._steps_per_call() == 1:
            return super().total_train_batches
        trainer = self.trainer
        total = trainer.lightning_module.train_batches_per_epoch()
        if (
            trainer.max_epochs in (None, -1)
            and trainer.max_steps is not None
            and trainer.max_steps > 0
        ):
            total = min(total, trainer.max_steps - trainer.global_step)
        return total

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        done = min((batch_idx + 1) * self._steps_per_call(), self.total_train_batches)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, done - 1)


class ConfigPrinter(pl.Callback):
    """Prints the run's config (a rich Tree, or None) and then a line of the run's (the speed
    choice, logged) once its objects are set up, the optimizer and schedule included, so that
    an error in any of them is the run's whole output."""

    def __init__(self, tree: Any, line: str | None = None) -> None:
        self.tree = tree
        self.line = line
        self.printed = False

    def _print(self, trainer: pl.Trainer) -> None:
        if not self.printed and trainer.is_global_zero:
            if self.tree is not None:
                from rich.console import Console

                Console(stderr=True).print(self.tree)
            if self.line:
                log.info(self.line)
        self.printed = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print(trainer)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print(trainer)


class Pruning(pl.Callback):
    """Reports val/acc to the job's Optuna trial at each validated epoch and stops the trial
    (raising Pruned) at that epoch's end, once recorded, when the study's pruner says so."""

    def __init__(self, trial: Any, monitor: str = "val/acc") -> None:
        self.trial = trial
        self.monitor = monitor
        self._validated: float | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after the module's on_validation_epoch_end, which logs the epoch's val/acc
        value = trainer.callback_metrics.get(self.monitor)
        if not trainer.sanity_checking and value is not None:
            self._validated = float(value)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value, self._validated = self._validated, None
        if value is None:  # an epoch not validated (trainer.check_val_every_n_epoch)
            return
        epoch = trainer.current_epoch
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise search.Pruned(
                f"pruned at epoch {epoch}: {self.monitor} {value:.4f} behind the other trials "
                "at that epoch (hydra.sweeper.pruner)"
            )


def job_pruning() -> Pruning | None:
    """The pruning callback of this sweep job's trial, in a sweep of OptunaSweeper with a
    pruner; None otherwise."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    sweeper = hydra_cfg.sweeper
    if not str(sweeper.get("_target_", "")).endswith(".OptunaSweeper") or not sweeper.get("pruner"):
        return None
    if len(sweeper.get("objectives") or {}) > 1:  # Optuna prunes no multi-objective study
        return None
    import optuna
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from fashion_lab.adapters import optuna_job_trial
    from fashion_lab.search import storage_url

    url = storage_url(sweeper.get("storage"), hydra_cfg.sweep.dir)
    pruner = instantiate(OmegaConf.to_container(sweeper.pruner, resolve=True))
    study = optuna.load_study(study_name=sweeper.study_name, storage=url, pruner=pruner)
    return Pruning(optuna_job_trial(study, hydra_cfg.job.num))


OWNERS = (
    # (a part of a source file's path, the config group whose object runs there)
    ("/torch/optim/lr_scheduler", "scheduler"),
    ("/torch/optim/", "optimizer"),
    ("/torch/nn/modules/", "model"),  # a layer; torch's functions serve any caller
    ("/pytorch_lightning/callbacks/", "callbacks"),
    ("/fashion_lab/callbacks.py", "callbacks"),
    ("/fashion_lab/checkpoints.py", "callbacks"),
    ("/pytorch_lightning/loggers/", "logger"),
    ("/fashion_lab/data.py", "data"),
    ("/pytorch_lightning/", "trainer"),
    ("/lightning_fabric/", "trainer"),
)
"""Whose code an error's innermost frame is in: the group whose settings the user changes."""


def network_files(net: torch.nn.Module) -> set[str]:
    """The source files of a network's own layers (fashion_lab's or a user's, not torch's)."""
    import inspect

    files = set()
    for layer in net.modules():
        try:
            files.add(inspect.getsourcefile(type(layer)))
        except (TypeError, OSError):
            continue
    return {f for f in files if f and "/torch/" not in f.replace("\\", "/")}


class FirstStep(pl.Callback):
    """Watches a fit until its first training step and its first epoch are done: an
    error until then (the real optimizer, schedule, network, loop and callbacks meeting for
    the first time) is said by `explain` in one sentence naming the settings to change.

    Args:
        network_files: the source files of the network's own layers (`network_files`).
        overrides: the command line's overrides, named as the settings to change.
        config: the run's resolved config: a setting of the failing group that the error or
            its lines name is said with its value, wherever it was set (a preset, a file).
    """

    def __init__(
        self, network_files: set[str], overrides: list[str], config: dict[str, Any] | None = None
    ) -> None:
        self.network_files = network_files
        self.overrides = overrides
        self.config = config or {}
        self.phase = "while setting up the fit"
        self.trained = self.epoch_done = False

    @property
    def watching(self) -> bool:
        return not (self.trained and self.epoch_done)

    def on_sanity_check_start(self, trainer, pl_module) -> None:
        self.phase = "at the first evaluation step (the sanity check)"

    def on_train_start(self, trainer, pl_module) -> None:
        self.phase = "before the first training step"

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if not self.trained:
            self.phase = "at the first training step"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self.trained:
            self.trained, self.phase = True, "in the first epoch"

    def on_validation_start(self, trainer, pl_module) -> None:
        if self.trained and not trainer.sanity_checking:
            self.phase = "at the first validation or the end of the first epoch"

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # the first epoch ended, its callbacks' epoch-end work included (Lightning runs the
        # checkpoint callbacks after every other)
        self.epoch_done = self.epoch_done or (self.trained and trainer.current_epoch > 0)

    def on_train_end(self, trainer, pl_module) -> None:
        self.epoch_done = True

    def owner(self, error: BaseException) -> str | None:
        """The config group whose code raised `error` (its innermost frame that one owns)."""
        import traceback

        for frame in reversed(traceback.extract_tb(error.__traceback__)):
            if frame.filename in self.network_files:
                return "model"
            for part, group in OWNERS:
                if part in frame.filename.replace("\\", "/"):
                    return group
        return None

    def explain(self, error: Exception) -> str:
        """The sentence for `error`, raised while `watching`: where the run was, whose code
        failed, and the overrides to change (those of that group whose option the failing
        lines name, else all of that group's)."""
        import traceback

        group = self.owner(error)
        why = str(error).strip().splitlines()[0] if str(error).strip() else ""
        why = f"{type(error).__name__}: {why}" if why else type(error).__name__
        if len(why) > 200:
            why = why[:197] + "..."
        where = f"in the {group}" if group else "in the run"
        frames = traceback.extract_tb(error.__traceback__)
        innermost = frames[-1].line or "" if frames else ""
        options = self.config.get(group) if group else None
        options = options if isinstance(options, dict) else {}
        texts = (str(error), innermost)  # what the error names, else the line that raised it
        if group == "model" and not named_options(options, *texts):
            fix = "fix the network, or change model._target_ or its options"
        elif group:
            fix = settings_to_change(group, self.overrides, options, texts)
        else:
            fix = "fix the settings it names"
        return f"The run failed {self.phase}, {where} ({why}); {fix}, then run again."
