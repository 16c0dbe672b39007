"""The end of a sweep: a summary of its jobs, read from their results.json files.

Registered as a Hydra callback (conf/hydra/default.yaml), so it runs in the launching process
whichever launcher ran the jobs (in-process, joblib workers, submitit/SLURM).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

failed_jobs: list[tuple[str, str]] = []
"""(job directory, reason) of the failed jobs of the last sweep this process ran."""

sweep_dir: str | None = None
"""The directory of the sweep this process runs or ran last."""


def sweep_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """The results.json of every job directory directly under a sweep directory."""
    jobs = []
    for path in sorted(sweep_dir.glob("*/results.json")):
        try:
            jobs.append(json.loads(path.read_text()) | {"job_dir": str(path.parent)})
        except (OSError, json.JSONDecodeError):
            jobs.append(
                {
                    "status": "failed",
                    "error": "unreadable results.json",
                    "job_dir": str(path.parent),
                }
            )
    return jobs


class SweepReport(Callback):
    """Prints how many jobs completed now, earlier (skipped) or failed, and why each failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global sweep_dir
        self.started = time.time()
        failed_jobs.clear()
        sweep_dir = str(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        jobs = sweep_jobs(Path(config.hydra.sweep.dir))
        done = [j for j in jobs if j.get("status") == "completed"]
        earlier = [j for j in done if j.get("finished_at", 0) < getattr(self, "started", 0)]
        failed = [j for j in jobs if j.get("status") != "completed"]
        failed_jobs.extend((j["job_dir"], j.get("error", j.get("status", "?"))) for j in failed)
        print(
            f"Sweep {config.hydra.sweep.dir}: {len(done) - len(earlier)} completed, "
            f"{len(failed)} failed, {len(earlier)} skipped (completed earlier).",
            file=sys.stderr,
        )
        for job_dir, reason in failed_jobs:
            print(f"  failed: {job_dir}: {reason}", file=sys.stderr)
