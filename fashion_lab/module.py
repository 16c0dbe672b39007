"""The LightningModule: loss, metrics, and the figures a run leaves in TensorBoard and on disk."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn
from torchmetrics import MaxMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from fashion_lab.adapters import count_stepped_batches, has_trainer
from fashion_lab.budget import TimeBudget
from fashion_lab.data import CLASS_NAMES
from fashion_lab.errors import UserError, settings_to_change, shown
from fashion_lab.figures import confusion_matrix_figure, prediction_grid_figure

log = logging.getLogger(__name__)


class DivergenceError(UserError):
    """The training loss stopped being finite, or exploded (`EXPLODED`)."""


class AtChance(UserError):
    """A run long enough to learn ended no better than guessing (`no_better_than_chance`)."""


EXPLODED = 3.0
"""A training epoch whose mean loss is above this many times the untrained network's (its
first batch's loss, or ln(classes) if higher) diverged: training only ever lowers it."""

CHANCE_MIN_STEPS = 200
"""Runs of fewer optimizer steps are not judged against chance: they may be merely short."""


def no_better_than_chance(
    val_acc_best: float | None, val_images: int, classes: int, steps: int
) -> str | None:
    """Why a run of `steps` optimizer steps learned nothing (its best validation accuracy within
    three standard errors of guessing one of `classes`), or None. Runs under CHANCE_MIN_STEPS
    are never judged: Fashion-MNIST's classifiers pass 70% within 200 steps of any sane recipe."""
    if val_acc_best is None or steps < CHANCE_MIN_STEPS or val_images < 1:
        return None
    chance = 1 / classes
    bound = chance + 3 * math.sqrt(chance * (1 - chance) / val_images)
    if val_acc_best > bound:
        return None
    return (
        f"After {steps} optimizer steps the best validation accuracy is {val_acc_best:.2%}, "
        f"no better than guessing ({chance:.0%}, up to {bound:.1%} by luck on {val_images} "
        "images)"
    )


BACKWARD_HOOKS = ("on_before_backward", "on_after_backward")


def backward_is_plain(trainer: pl.Trainer) -> bool:
    """Whether Lightning's `manual_backward` would do no more than `loss.backward()`: a
    strategy and precision plugin that add nothing to it (one device, no loss scaling), no
    profiler, and no callback or module that listens to its hooks. Each optimizer step then
    skips two rounds of hooks that would do nothing (their cost: experiments/benchmark)."""
    from pytorch_lightning.plugins.precision import MixedPrecision, Precision
    from pytorch_lightning.profilers import PassThroughProfiler
    from pytorch_lightning.strategies import Strategy
    from pytorch_lightning.utilities.model_helpers import is_overridden

    strategy, plugin = type(trainer.strategy), type(trainer.precision_plugin)
    steps = ("backward", "pre_backward", "post_backward")
    module = trainer.lightning_module
    return (
        all(getattr(strategy, m) is getattr(Strategy, m) for m in steps)
        and plugin.pre_backward in (Precision.pre_backward, MixedPrecision.pre_backward)
        and all(getattr(plugin, m) is getattr(Precision, m) for m in steps[::2])
        and getattr(trainer.precision_plugin, "scaler", None) is None
        and isinstance(trainer.profiler, PassThroughProfiler)
        and not any(is_overridden(h, module) for h in (*BACKWARD_HOOKS, "backward"))
        and not any(is_overridden(h, c) for c in trainer.callbacks for h in BACKWARD_HOOKS)
    )


def outputs(net: nn.Module, x: torch.Tensor, flips: bool = False) -> torch.Tensor:
    """The network's logits for `x`; with `flips`, the mean of the logits of each image and of
    its mirror image (test-time augmentation, for classes that look alike mirrored)."""
    if not flips:
        return net(x)
    return (net(x) + net(x.flip(-1))) / 2


def tag_safe(name: str) -> str:
    """A class name usable as part of a TensorBoard tag ("T-shirt/top" -> "T-shirt_top")."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _options(factory: Callable[..., Any]) -> dict[str, Any]:
    """The options a partial was configured with (optimizer.lr, ...)."""
    return dict(getattr(factory, "keywords", {}) or {})


def _build(group: str, factory: Callable[..., Any], **kwargs) -> Any:
    """`factory(**kwargs)`, a value it refuses (Adam's weight_decay -1) said in one sentence.

    Raises:
        UserError: the optimizer or scheduler refused one of its options.
    """
    name = getattr(getattr(factory, "func", factory), "__name__", group)
    try:
        return factory(**kwargs)
    except (ValueError, TypeError, ArithmeticError) as e:
        if not isinstance(e, ZeroDivisionError):
            raise UserError(
                f"{name} refused its options ({e}); "
                f"{settings_to_change(group, options=_options(factory), texts=(str(e),))}."
            ) from None
        # OneCycleLR with a one-step warm-up, CosineAnnealingLR with T_max=0
        raise UserError(
            f"{name} cannot divide this run's optimizer steps into its phases; train for a few "
            f"more steps, or change the {group}.* overrides (e.g. {group}.pct_start, "
            f"{group}.T_max)."
        ) from None


LEARNING_RATE_KEYS = (
    "lr",
    "initial_lr",
    "max_lr",
    "min_lr",
    "base_lr",
    "max_momentum",
    "base_momentum",
)
"""An optimizer's param-group keys that a schedule owns by design (the rate it schedules)."""


def taken_over(
    before: list[dict[str, Any]], after: list[dict[str, Any]], configured: Iterable[str]
) -> str | None:
    """What a schedule changed, when it was built, of the optimizer's settings that the config
    gives (`configured`) besides the learning rate (one-cycle's momentum, or Adam's first
    beta), said with how to keep them."""
    changed = {
        key: (old[key], new[key])
        for old, new in zip(before, after, strict=False)
        for key in old
        if key in configured and key not in LEARNING_RATE_KEYS and new.get(key) != old[key]
    }
    if not changed:
        return None
    said = ", ".join(f"optimizer.{k}={shown(a)} (now {shown(b)})" for k, (a, b) in changed.items())
    return (
        f"sets the optimizer's {' and '.join(changed)} itself, in place of {said}; to keep "
        f"{'it' if len(changed) == 1 else 'them'}, set scheduler.cycle_momentum=false"
    )


def evaluation_metrics(classes: int) -> MetricCollection:
    """Validation and test metrics: accuracy, per-class accuracy, confusion matrix."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes=classes, average="micro"),
            "acc_class": MulticlassAccuracy(num_classes=classes, average=None),
            "confmat": MulticlassConfusionMatrix(num_classes=classes),
        },
        compute_groups=False,
    )


class LitClassifier(pl.LightningModule):
    """Trains any classification network with cross-entropy and reports accuracy.

    Args:
        net: the network (a plain `nn.Module` from the zoo).
        optimizer: a partial optimizer, bound here to the network's parameters.
        scheduler: a partial LR scheduler, or None. Its `total_steps` or `T_max`, when left
            None in the config, are filled with the run's number of optimizer steps; it is
            stepped every optimizer step.
        label_smoothing: cross-entropy label smoothing.
        class_names: names shown in the figures and per-class metrics.
        channels_last: run the network in channels-last memory format (faster convolutions).
        num_prediction_samples: test images drawn in the prediction grid (0: no grid).
        steps_per_call: optimizer steps per training step: each training batch holds up to
            that many batches stacked [m, B, ...], stepped through in order (manual
            optimization), so Lightning's cost per step is paid once for all of them; logs
            keep the optimizer step as their x-axis. 1: Lightning's automatic optimization.
        gradient_clip_val, gradient_clip_algorithm: clipping, applied here when
            `steps_per_call` > 1 (otherwise the Trainer applies its own).
        compiled: `net` is `torch.compile`d (Lightning's summary then runs no example input).
        config: the composed run config, stored in every checkpoint so that a checkpoint
            alone rebuilds its model.
        budget: the run's time budget: the schedule then follows the share of the training
            time spent, where that is ahead of the share of its steps taken.
        test_flips: outside training (validation, test, prediction), average the logits of
            each image and its mirror image.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        *,
        label_smoothing: float = 0.0,
        class_names: Sequence[str] = CLASS_NAMES,
        channels_last: bool = False,
        num_prediction_samples: int = 32,
        steps_per_call: int = 1,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
        compiled: bool = False,
        config: dict | None = None,
        budget: TimeBudget | None = None,
        test_flips: bool = False,
    ) -> None:
        super().__init__()
        self.test_flips = test_flips
        self.budget = budget
        self._schedule_length = 0  # the scheduler's steps (its total_steps or T_max)
        self.steps_per_call = steps_per_call
        self.automatic_optimization = steps_per_call == 1
        self.gradient_clip_val = gradient_clip_val
        self.gradient_clip_algorithm = gradient_clip_algorithm
        self.channels_last = channels_last
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.class_names = tuple(class_names)
        self.num_prediction_samples = num_prediction_samples
        self.config = config
        # one image: Lightning's model summary shows each layer's output size and counts the
        # network's FLOPs per image with it (without, it shows 0); a compiled network would be
        # compiled for it first
        if not compiled:
            self.example_input_array = torch.zeros(1, 1, 28, 28)
        n = len(self.class_names)
        # training loss and accuracy: running sums on the device (loss sum, correct
        # predictions), logged once an epoch, as a `self.log` call or a torchmetrics update per
        # step costs much beside a small network's step; a non-finite loss leaves the sum
        # non-finite, which is how divergence is found without reading a GPU value each step
        self.register_buffer("_train_sums", torch.zeros(2), persistent=False)
        self._train_images = 0
        self.call_images = 0  # the images the last training step trained on (RunRecorder)
        self._checked_step = -1  # global step of the last divergence check
        self._output_checked = False  # the network's output shape, checked at its first batch
        self.initial_loss: float | None = None  # the first training batch's (kept in checkpoints)
        self._plain_backward = False  # see backward_is_plain
        eval_metrics = evaluation_metrics(n)
        self.val_metrics = eval_metrics.clone(prefix="val/")
        self.test_metrics = eval_metrics.clone(prefix="test/")
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # kept in checkpoints: a resumed run keeps its best
        self.confusion: dict[str, torch.Tensor] = {}
        self._resumed_schedule: int | None = None  # the schedule length of a resumed checkpoint
        self.samples: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return outputs(self.net, x, self.test_flips and not self.training)

    def _loss_and_logits(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = batch
        logits = self(x)
        if not self._output_checked:
            self._check_output(logits, len(y))
        return self.criterion(logits.float(), y), logits, y

    def _check_output(self, logits: Any, images: int) -> None:
        """The network's first output is one score per class for each image.

        Raises:
            UserError: another shape (a network built for another number of classes), named
                with the model option that sets the classes, where it has one.
        """
        n = len(self.class_names)
        shape = list(logits.shape) if isinstance(logits, torch.Tensor) else None
        if shape == [images, n]:
            self._output_checked = True
            return
        got = f"outputs of shape {shape}" if shape else f"a {type(logits).__name__}"
        model = (self.config or {}).get("model") or {}
        option = next((k for k in model if "class" in str(k).lower()), None)
        fix = (
            f"set model.{option}={n}"
            if option
            else f"make the network return one score per class ([batch, {n}])"
        )
        raise UserError(
            f"The network returned {got} for a batch of {images} images, where a Fashion-MNIST "
            f"classifier returns [{images}, {n}] (one score for each of the {n} classes); {fix}."
        )

    def setup(self, stage: str) -> None:
        if self.steps_per_call > 1 and self.trainer.world_size > 1:
            # DDP synchronizes gradients in the backward pass that follows its forward call: the
            # other steps of a call would go unsynchronized
            raise UserError(
                f"module.steps_per_call={self.steps_per_call} works on one device only, and this "
                f"run has {self.trainer.world_size} processes; set module.steps_per_call=1."
            )

    def on_train_start(self) -> None:
        self.val_acc_best.reset()
        self._plain_backward = backward_is_plain(self.trainer)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        before = self._train_images
        seen: list = []
        if self.automatic_optimization:
            loss, lr = self._train_on(batch, seen), None  # lr: read below, before the step
            steps_after = self.global_step + 1  # Lightning steps the optimizer after this
        else:
            loss, lr = self._steps_through(batch, seen)
            steps_after = self.global_step
        self._add_to_sums(seen)
        if self.initial_loss is None:  # read once: the reference an exploding loss is judged by
            self.initial_loss = float(seen[0][0])
        self.call_images = self._train_images - before  # this process's, this call's
        # The loss is read, checked and shown only on the steps Lightning writes logs (those
        # ending on a multiple of `log_every_n_steps`): reading a GPU value makes the CPU wait
        # for the GPU's queue of work, and even on a CPU a read every step costs a small
        # network several percent; a value shown on another step would be written later under
        # a step it does not belong to. Divergence in between is found from the running sum.
        every = self.trainer.log_every_n_steps if has_trainer(self) else 0
        if every > 0 and steps_after % every == 0:
            current, running = torch.stack([loss.detach(), self._train_sums[0]]).tolist()
            self._check_divergence(current, running)
            # a CPU tensor: Lightning turns the progress bar's value into a number at every
            # step, which for a GPU tensor would be a wait at every step
            self.log("train/loss_step", torch.tensor(current), prog_bar=True)
            if lr is None:
                lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            self.log("train/lr", torch.tensor(lr))
        return loss

    def _train_on(self, batch, seen: list) -> torch.Tensor:
        """The loss of one batch; its loss, logits and labels are added to `seen`."""
        loss, logits, y = self._loss_and_logits(batch)
        seen.append((loss.detach(), logits.detach(), y))
        self._train_images += len(y)
        return loss

    def _add_to_sums(self, seen: list) -> None:
        """Add a call's batches to the epoch's running sums of loss and correct predictions, in
        a few ops for all of them (a handful per batch cost a CPU step about 2%)."""
        losses, logits, labels = zip(*seen, strict=True)
        if len(seen) == 1:  # one batch a call (the GPU's default): no joining copies
            loss, logits, labels = losses[0], logits[0], labels[0]
        else:
            loss, logits, labels = torch.stack(losses).sum(), torch.cat(logits), torch.cat(labels)
        # a call's batches are all one size: grouped batches are full ones
        correct = (logits.argmax(dim=1) == labels).sum()
        self._train_sums += torch.stack([loss * len(seen[0][2]), correct])

    def _steps_through(self, batch, seen: list) -> tuple[torch.Tensor, float]:
        """One optimizer step per batch of a stacked group [m, B, ...], in order, until
        `trainer.max_steps`; Lightning's count of stepped batches, the x-axis of its logs,
        then counts each of them too. The last step's loss and learning rate."""
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        max_steps, stepped = self.trainer.max_steps, 0
        for part in zip(*batch, strict=True):
            if stepped and max_steps != -1 and self.global_step >= max_steps:
                break
            stepped += 1
            loss, lr = self._train_on(part, seen), optimizer.param_groups[0]["lr"]
            optimizer.zero_grad(set_to_none=True)
            if self._plain_backward:
                loss.backward()
            else:
                self.manual_backward(loss)
            if self.gradient_clip_val:
                self.clip_gradients(
                    optimizer,
                    gradient_clip_val=self.gradient_clip_val,
                    gradient_clip_algorithm=self.gradient_clip_algorithm or "norm",
                )
            optimizer.step()
            if scheduler is not None:
                self.lr_scheduler_step(scheduler, None)
        count_stepped_batches(self.trainer, stepped - 1)  # Lightning adds one after this call
        return loss, lr

    def lower_lr_hint(self) -> str:
        """`lower the learning rate (optimizer.lr=0.0004)`: a tenth of the configured one."""
        lr = ((self.config or {}).get("optimizer") or {}).get("lr")
        if not isinstance(lr, int | float) or lr <= 0:
            return "lower the learning rate (optimizer.lr)"
        return f"lower the learning rate (optimizer.lr={min(lr / 10, 0.001):g})"

    def _check_divergence(self, current: float | None = None, running: float | None = None):
        """Stop with a hint once a training loss was non-finite (`running`: the epoch's sum), or
        (checked without `current`: at an epoch's end or before validation) once the epoch's
        mean loss so far exploded past EXPLODED times the untrained network's."""
        if running is None:
            running = self._train_sums[0].item()
            images = self._train_images
            reference = max(self.initial_loss or 0.0, math.log(len(self.class_names)))
            if images and math.isfinite(running) and running / images > EXPLODED * reference:
                raise DivergenceError(
                    f"Training diverged: the loss averaged {running / images:.3g} over epoch "
                    f"{self.current_epoch} so far, more than {EXPLODED:g} times the untrained "
                    f"network's {reference:.3g}; {self.lower_lr_hint()} or clip gradients "
                    "(trainer.gradient_clip_val=1.0)."
                )
        step, since = self.global_step, self._checked_step + 1
        self._checked_step = step
        if current is not None and not math.isfinite(current):
            value = current
        elif not math.isfinite(running):
            value = "non-finite"
        else:
            return
        # the loss is read every log_every_n_steps steps: it went bad since the last read
        span = f"step {step}" if since >= step else f"a step between {since} and {step}"
        where = f"{value} at {span}"
        hint = f"{self.lower_lr_hint()} or clip gradients (trainer.gradient_clip_val=1.0)"
        if has_trainer(self) and self.trainer.precision == "16-true":
            hint = (
                "float16 weights and optimizer state (trainer.precision=16-true) are too coarse "
                "for training; use trainer.precision=16-mixed or bf16-mixed"
            )
        raise DivergenceError(
            f"Training diverged: the loss became {where} (epoch {self.current_epoch}); {hint}."
        )

    def on_validation_epoch_start(self) -> None:
        self._check_divergence()  # before validation: no checkpoint of a diverged model

    def on_train_epoch_end(self) -> None:
        self._check_divergence()
        images = max(self._train_images, 1)
        # every process trains on an equal share, so the mean of the means is the mean
        self.log("train/loss", self._train_sums[0] / images, prog_bar=True, sync_dist=True)
        self.log("train/acc", self._train_sums[1] / images, prog_bar=True, sync_dist=True)
        self._train_sums.zero_()
        self._train_images = 0

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, logits, y = self._loss_and_logits(batch)
        self.val_metrics.update(logits.argmax(dim=1), y)
        self.log("val/loss", loss, on_epoch=True, batch_size=len(y), sync_dist=True)

    def test_step(self, batch, batch_idx: int) -> None:
        # autocast off: the test figures are the trained weights' own, as evaluate computes them
        mixed = torch.is_autocast_enabled(self.device.type)
        with torch.autocast(self.device.type, enabled=False) if mixed else nullcontext():
            loss, logits, y = self._loss_and_logits(batch)
        preds = logits.argmax(dim=1)
        self.test_metrics.update(preds, y)
        self.log("test/loss", loss, on_epoch=True, batch_size=len(y), sync_dist=True)
        if batch_idx == 0 and self.num_prediction_samples > 0:
            k = self.num_prediction_samples
            self.samples = (batch[0][:k].detach().cpu(), y[:k].cpu(), preds[:k].cpu())

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).float().softmax(dim=1)

    def _log_eval_metrics(self, metrics: MetricCollection, stage: str) -> float:
        values = metrics.compute()
        metrics.reset()
        acc = values[f"{stage}/acc"]
        # torchmetrics already reduced these over processes; sync_dist keeps Lightning quiet
        self.log(f"{stage}/acc", acc, prog_bar=True, sync_dist=True)
        for name, value in zip(self.class_names, values[f"{stage}/acc_class"], strict=True):
            self.log(f"{stage}/acc_class/{tag_safe(name)}", value, sync_dist=True)
        self.confusion[stage] = values[f"{stage}/confmat"].cpu()
        return acc

    def on_validation_epoch_end(self) -> None:
        acc = self._log_eval_metrics(self.val_metrics, "val")
        if not self.trainer.sanity_checking:
            self.val_acc_best(acc)
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics(self.test_metrics, "test")
        self._write_figure("test/confusion_matrix", self._confusion_figure("test"))
        if self.samples is not None:
            figure = prediction_grid_figure(*self.samples, self.class_names)
            self._write_figure("test/predictions", figure)

    def on_fit_end(self) -> None:
        if "val" in self.confusion:
            self._write_figure("val/confusion_matrix", self._confusion_figure("val"))

    def _confusion_figure(self, stage: str):
        title = f"{'Validation' if stage == 'val' else 'Test'} confusion matrix"
        return confusion_matrix_figure(self.confusion[stage], self.class_names, title=title)

    def _write_figure(self, tag: str, figure) -> None:
        """Add the figure to every TensorBoard logger and save it as PNG in the run directory."""
        if self.trainer.is_global_zero:
            directory = Path(self.trainer.default_root_dir)
            directory.mkdir(parents=True, exist_ok=True)
            figure.savefig(directory / f"{tag.replace('/', '_')}.png", dpi=100)
            for logger in self.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_figure(tag, figure, self.global_step, close=False)
        plt.close(figure)

    def configure_optimizers(self):
        optimizer = _build("optimizer", self.optimizer_factory, params=self.parameters())
        if not self.scheduler_factory:
            return optimizer
        keywords = getattr(self.scheduler_factory, "keywords", {})
        steps = self._optimizer_steps()
        length = {
            k: steps for k in ("total_steps", "T_max") if k in keywords and keywords[k] is None
        }
        if length and self._resumed_schedule not in (None, steps):
            # the checkpoint's scheduler state would replace the length, then run out of steps
            raise UserError(
                f"The checkpoint's learning-rate schedule lasts {self._resumed_schedule} "
                f"optimizer steps and this run's settings make {steps}; resume with the "
                f"settings the run was started with (trainer.max_epochs, data.batch_size)."
            )
        before = [dict(group) for group in optimizer.param_groups]
        scheduler = _build("scheduler", self.scheduler_factory, optimizer=optimizer, **length)
        self._schedule_length = int(
            getattr(scheduler, "total_steps", None) or getattr(scheduler, "T_max", None) or 0
        )
        configured = ((self.config or {}).get("optimizer") or {}).keys()
        if taken := taken_over(before, optimizer.param_groups, configured):
            log.warning(f"{type(scheduler).__name__} {taken}.")
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def lr_scheduler_step(self, scheduler, metric) -> None:
        """One step of the schedule; under a time budget, as many as bring it to the share of
        the training time spent (each step as the scheduler computes it, so any schedule with a
        length follows the time), its last position held once the time is spent."""
        length = self._schedule_length
        if self.budget is None or not length or metric is not None:
            super().lr_scheduler_step(scheduler, metric)
            return
        share = self.budget.share()
        last = length - 1  # the schedule's final rate (its step `length` is past the end)
        target = last if share >= 1 else max(scheduler.last_epoch + 1, round(share * last))
        while scheduler.last_epoch < min(target, length):
            scheduler.step()

    def train_batches_per_epoch(self) -> int:
        """The batches (optimizer steps) an epoch trains on. Lightning counts training calls,
        each holding up to `steps_per_call` batches, the epoch's last call perhaps fewer."""
        calls = self.trainer.num_training_batches
        if self.steps_per_call == 1:
            return calls
        return min(calls * self.steps_per_call, self.trainer.train_dataloader.num_batches)

    def _optimizer_steps(self) -> int:
        """The optimizer steps of the whole fit (the scheduler's length)."""
        trainer = self.trainer
        if trainer.max_steps != -1 and trainer.max_epochs in (None, -1):
            return int(trainer.max_steps)  # no epoch limit: the step limit ends the fit
        steps = trainer.estimated_stepping_batches  # training steps: calls, under a step limit
        if self.steps_per_call > 1:
            calls = trainer.num_training_batches
            steps = steps * self.train_batches_per_epoch() // calls  # whole epochs, or max_steps
        if trainer.max_steps != -1:
            steps = min(steps, trainer.max_steps)  # max_steps counts optimizer steps
        return int(steps)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["fashion_lab_config"] = self.config
        checkpoint["fashion_lab_initial_loss"] = self.initial_loss

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        initial = checkpoint.get("fashion_lab_initial_loss")
        if isinstance(initial, float) and math.isfinite(initial):
            self.initial_loss = initial
        states = checkpoint.get("lr_schedulers") or [{}]
        self._resumed_schedule = states[0].get("total_steps") or states[0].get("T_max")
