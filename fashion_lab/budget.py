"""Wall time from the process's start: the clock of a run's time-to-accuracy figures, and of its
time budget (`budget_s`), which ends training where the test still fits and spreads the
learning-rate schedule over the time rather than over the steps."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from fashion_lab.errors import UserError

_IMPORTED = time.time()

TAIL_S = 5.0
"""Seconds kept beside the evaluations' estimated time, for what comes between and after them:
the figures, loading the best checkpoint, results.json, and the process's exit."""

EVAL_MARGIN = 1.5
"""The stopped epoch's validation is estimated at the last one's time, and the test at its
images times a measured full-precision forward pass per image; each times this (a margin for a
machine that slows down)."""


def process_start() -> float:
    """When this process started (`time.time()`'s clock): from /proc on Linux, where the
    interpreter's start and imports count too; elsewhere when fashion_lab was imported."""
    try:
        fields = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # starttime: clock ticks after boot (field 22 of proc(5))
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED
    # btime is whole seconds: never later than the import, never over a minute before it
    return started if _IMPORTED - 60 < started <= _IMPORTED else _IMPORTED


def since_start(started: float | None = None) -> float:
    """Seconds of wall time since the process started (or since `started`)."""
    return time.time() - (process_start() if started is None else started)


class TimeBudget(pl.Callback):
    """`seconds` of wall time for the whole run, from the process's start: training stops at
    the batch where the time left is what its last validation and the test are estimated to
    need, and `share()` says how much of the training time is spent (the module's schedule
    follows it).

    Args:
        seconds: the run's budget (`budget_s`).
        test_images: the test split's size (0: the run tests nothing).
        eval_batch: the test's batch size: after the first validation, one such batch of the
            network's forward pass is timed as the test runs it (full precision).
        started: the clock's zero (default: the process's start).
    """

    def __init__(
        self, seconds: float, test_images: int, eval_batch: int, started: float | None = None
    ) -> None:
        self.seconds = seconds
        self.started = process_start() if started is None else started
        self.test_images = test_images
        self.eval_batch = max(1, min(eval_batch, test_images))
        self.validation_s = 0.0  # the last validation's wall time
        self.test_image_s = 0.0  # a test image's forward pass, measured
        self._validating_since = 0.0
        self._train_start: float | None = None
        self.ran_out = False  # training was stopped by the budget

    def test_reserve(self) -> float:
        """Seconds kept for what follows the training: the stopped epoch's validation, the
        test, and what follows them."""
        evaluations = self.validation_s + self.test_image_s * self.test_images
        return evaluations * EVAL_MARGIN + TAIL_S

    def deadline(self) -> float:
        """The wall-clock time at which training must stop."""
        return self.started + self.seconds - self.test_reserve()

    def share(self) -> float:
        """The share of the training time spent, from 0 to 1."""
        if self._train_start is None:
            return 0.0
        span = self.deadline() - self._train_start
        return 1.0 if span <= 0 else min(1.0, max(0.0, (time.time() - self._train_start) / span))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._train_start = time.time()
        if self._train_start >= self.deadline():
            raise UserError(
                f"budget_s={self.seconds:g} is spent before training starts (the start took "
                f"{self._train_start - self.started:.0f} s, and the test needs about "
                f"{self.test_reserve():.0f} s); raise it, e.g. budget_s="
                f"{int(self._train_start - self.started + self.test_reserve()) + 60}."
            )

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validating_since = time.time()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.validation_s = time.time() - self._validating_since
        if not self.test_image_s and self.test_images:
            self.test_image_s = self._time_test_image(pl_module)

    def _time_test_image(self, pl_module: pl.LightningModule) -> float:
        """Seconds of one image's forward pass as the test runs it: in eval mode, full
        precision, a batch of the test's size (the second pass: the first creates kernels)."""
        x = torch.zeros(self.eval_batch, 1, 28, 28, device=pl_module.device)
        training = pl_module.training
        pl_module.eval()
        device = pl_module.device.type
        with torch.no_grad(), torch.autocast(device, enabled=False):
            pl_module(x)
            start = time.perf_counter()
            pl_module(x)
            if device == "cuda":
                torch.cuda.synchronize(pl_module.device)
            seconds = time.perf_counter() - start
        pl_module.train(training)
        return seconds / self.eval_batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if time.time() >= self.deadline():
            self.ran_out = True
            trainer.should_stop = True
