"""What the progress bar's redraws cost a training run, in a terminal.

    script -qc "python experiments/benchmark/progress_bar.py [overrides...]" /dev/null

Runs the benchmark's framework path (3 epochs of the default run) with the progress bar on and
counts the redraws of the bar (rich's Live.refresh) and the time they take. Rich draws only in
a terminal, hence `script`, which gives the command one. Compare
`callbacks.progress_bar.refresh_rate=100` (Lightning's default) with the configured rate.
"""

from __future__ import annotations

import sys
import time

import rich.live

from fashion_lab import benchmark

redraws = {"count": 0, "seconds": 0.0}
_refresh = rich.live.Live.refresh


def refresh(self: rich.live.Live) -> None:
    start = time.perf_counter()
    _refresh(self)
    redraws["count"] += 1
    redraws["seconds"] += time.perf_counter() - start


def framework_path(cfg):
    start = time.perf_counter()
    figures = _framework_path(cfg)
    fit = time.perf_counter() - start
    print(
        f"\nprogress bar: {redraws['count']} redraws taking {redraws['seconds']:.3f} s "
        f"({redraws['seconds'] / fit:.1%}) of a {fit:.1f} s fit",
        file=sys.stderr,
    )
    return figures


rich.live.Live.refresh = refresh
_framework_path, benchmark.framework_path = benchmark.framework_path, framework_path
benchmark.main(["--epochs", "3", "trainer.enable_progress_bar=true", *sys.argv[1:]])
