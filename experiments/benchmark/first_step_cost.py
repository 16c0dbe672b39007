"""What the first-step check costs a run: the time spent in its hooks and in the network's
output check, and the one-batch sanity check (Lightning's, `trainer.num_sanity_val_steps: 1`)
that gives it an evaluation step before the first epoch.

    python experiments/benchmark/first_step_cost.py [overrides]   # default: 1 epoch, real data

Runs the default training in this process with every hook of `callbacks.FirstStep` and
`LitClassifier._check_output` timed, and prints the seconds each took against the run's wall time.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict

from fashion_lab import callbacks, module, train
from fashion_lab.config import compose_config

spent: dict[str, float] = defaultdict(float)


def timed(owner: type, name: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[f"{owner.__name__}.{name}"] += time.perf_counter() - start

    setattr(owner, name, wrapper)


class SanityTimer(callbacks.pl.Callback):
    def on_sanity_check_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_sanity_check_end(self, trainer, pl_module) -> None:
        spent["Lightning's sanity check (one evaluation batch)"] += time.perf_counter() - self.start


def main() -> None:
    hooks = [n for n in vars(callbacks.FirstStep) if n.startswith("on_")]
    for name in hooks:
        timed(callbacks.FirstStep, name)
    timed(module.LitClassifier, "_check_output")
    original_trainer = train.build.trainer
    train.build.trainer = lambda cfg, run, cbs=(): original_trainer(cfg, run, [*cbs, SanityTimer()])
    overrides = sys.argv[1:] or ["trainer.max_epochs=1", "trainer.enable_progress_bar=false"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config([*overrides, f"paths.log_dir={tmp}"], f"{tmp}/run")
        start = time.perf_counter()
        record = train.train(cfg)
        wall = time.perf_counter() - start
    checks = sum(v for k, v in spent.items() if not k.startswith("Lightning"))
    print(f"run: {' '.join(overrides)}: {wall:.1f} s, status {record['status']}")
    for name, seconds in sorted(spent.items()):
        print(f"  {name}: {seconds * 1e3:.2f} ms")
    print(f"first-step check (hooks and output check): {checks * 1e3:.2f} ms per run")


if __name__ == "__main__":
    main()
