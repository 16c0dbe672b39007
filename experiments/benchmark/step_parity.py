"""The framework's training calls against the hand loop's steps, interleaved: after each
framework call of K optimizer steps, K steps of the benchmark's hand loop (its own network and
optimizer, the same data and settings), so that the machine's drift from one minute to the next
favours neither.

    python experiments/benchmark/step_parity.py [--epochs 2] [overrides...]

Per epoch: the median milliseconds of a framework call and of the K hand steps after it (which
index and normalize their own batches), their ratio, the time between framework calls
(Lightning's loop, fetching and normalizing the next call's batches; the hand steps excluded),
and the hand steps' total over the framework's calls and the time between them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from fashion_lab import benchmark


class Interleaved(pl.Callback):
    def __init__(self, hand: benchmark.HandLoop, steps_per_call: int) -> None:
        self.hand, self.k = hand, steps_per_call
        self.order = torch.randperm(len(hand.x_train), device=hand.device)
        self.done = 0  # hand steps so far
        self.framework: list[float] = []
        self.hand_s: list[float] = []
        self.between: list[float] = []
        self._start = 0.0
        self._end: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._start = time.perf_counter()
        if self._end is not None:
            self.between.append(self._start - self._end)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        done = time.perf_counter()
        self.framework.append(done - self._start)
        b = self.hand.batch
        for _ in range(self.k):
            i = self.done % self.hand.steps
            self.hand.step(self.order[i * b : (i + 1) * b])
            self.done += 1
        self._end = time.perf_counter()
        self.hand_s.append(self._end - done)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # the last call of an epoch can hold fewer batches
        framework, hand = self.framework[:-1], self.hand_s[:-1]
        ratio = statistics.median(h / f for f, h in zip(framework, hand, strict=True))
        call_ms, hand_ms = 1e3 * statistics.median(framework), 1e3 * statistics.median(hand)
        print(
            f"epoch {trainer.current_epoch}: framework call {call_ms:.1f} ms, {self.k} hand steps"
            f" {hand_ms:.1f} ms (hand / framework: median {ratio:.3f},"
            f" totals {sum(hand) / sum(framework):.3f}); between calls"
            f" {1e3 * statistics.median(self.between):.2f} ms, {sum(self.between):.2f} s in all;"
            f" hand / framework with the time between calls:"
            f" {sum(hand) / (sum(framework) + sum(self.between)):.3f}"
        )
        self.framework, self.hand_s, self.between, self._end = [], [], [], None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, run, datamodule = benchmark.prepare(args.epochs, args.overrides, tmp)
        print(f"{cfg.model_name}, {run.trainer['precision']}, {run.steps_per_call} steps per call")
        hand = benchmark.HandLoop(cfg, run, datamodule)
        hand.net.train()
        cfg.paths.output_dir = str(Path(tmp) / "run")
        benchmark.framework_path(cfg, run, (Interleaved(hand, run.steps_per_call),))


if __name__ == "__main__":
    main()
