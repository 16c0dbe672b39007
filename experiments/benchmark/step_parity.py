"""Where the framework's training time goes beside the hand loop's: inside its training calls
(the optimizer steps), and between them (Lightning's loop, fetching and normalizing a batch).

    python experiments/benchmark/step_parity.py [--epochs 3] [--rounds 2] [overrides...]

Each round trains the benchmark's framework path, then its hand loop, in one process; per
epoch it prints the framework's milliseconds per optimizer step inside its calls, its seconds
between calls, and the hand loop's milliseconds per step (indexing and normalizing its batch,
forward, backward, step).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl

from fashion_lab import benchmark


class CallTimes(pl.Callback):
    """Seconds inside each training call and between one call's end and the next's start."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self._inside: list[float] = []
        self._between: list[float] = []
        self._start = 0.0
        self._end: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._start = time.perf_counter()
        if self._end is not None:
            self._between.append(self._start - self._end)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._end = time.perf_counter()
        self._inside.append(self._end - self._start)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs.append(
            {
                "inside_s": sum(self._inside),
                "between_s": sum(self._between),
                "calls": len(self._inside),
            }
        )
        self._inside, self._between, self._end = [], [], None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, run, datamodule = benchmark.prepare(args.epochs, args.overrides, tmp)
        steps = len(datamodule.split("train")[0]) // datamodule.batch_size
        print(f"{cfg.model_name}, {run.trainer['precision']}, {run.steps_per_call} steps per call")
        for round_ in range(args.rounds):
            times = CallTimes()
            gc.collect()
            cfg.paths.output_dir = str(Path(tmp) / f"run{round_}")
            benchmark.framework_path(cfg, run, (times,))
            gc.collect()
            hand = benchmark.hand_loop(cfg, run, datamodule, args.epochs)
            for epoch, (f, h) in enumerate(zip(times.epochs, hand["train_s_all"], strict=True)):
                print(
                    f"round {round_} epoch {epoch}: framework {1e3 * f['inside_s'] / steps:.2f} ms"
                    f" a step inside its {f['calls']} calls, {f['between_s']:.2f} s between them;"
                    f" hand loop {1e3 * h / steps:.2f} ms a step"
                )


if __name__ == "__main__":
    main()
