"""The end of a sweep: a summary of its jobs, read from their results.json files.

Registered as a Hydra callback (conf/hydra/default.yaml), so it runs in the launching process
whichever launcher ran the jobs (in-process, joblib workers, submitit/SLURM).

Ctrl-C in a sweep whose jobs run in worker processes (hydra/launcher=parallel, or
submitit_local) reaches the launching process and every worker (the terminal signals them all).
Hydra's joblib launcher would then kill the workers at once, perhaps before their jobs recorded
how far they got; submitit's local job controllers would print their tracebacks and kill their
jobs a second later. So the launching process does not stop there: it writes STOP_FILE, so that
no new job starts, and waits for the running jobs, which save their progress and return (the
controllers ignore Ctrl-C); the sweep then ends as interrupted. A second Ctrl-C stops at once.
A stop signal (SIGTERM, ...) sent to the launching process alone does the same, and is passed
on to the workers as SIGTERM (submitit's local controllers pass SIGTERM on to their jobs).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fashion_lab import adapters, stops
from fashion_lab.config import SWEPT

STOP_FILE = ".interrupted"
"""Written in a sweep directory when its sweep is stopped: jobs that have not started skip."""

LAUNCHER_PID = "FASHION_LAB_LAUNCHER_PID"
"""Environment variable: the launching process, so that a job knows it runs in a worker."""


def in_worker() -> bool:
    """Whether this process runs sweep jobs for another (a parallel launcher's worker)."""
    return os.environ.get(LAUNCHER_PID) not in (None, str(os.getpid()))


def in_submitit_job() -> bool:
    """Whether this process is a submitit job (a SLURM job of hydra/launcher=slurm, or a
    submitit_local one)."""
    return bool(os.environ.get("SUBMITIT_EXECUTOR"))


def take_stop_signals(job_starts: bool) -> None:
    """In a worker, which runs job after job: stop signals stop a job (taken from
    `stops.stop_on_signals`) and are ignored between jobs, which a SIGTERM passed on by the
    launching process would otherwise end with the worker, not the job."""
    before, after = (
        (signal.SIG_IGN, signal.SIG_DFL) if job_starts else (signal.SIG_DFL, signal.SIG_IGN)
    )
    for s in stops.STOP_SIGNALS:
        if signal.getsignal(s) is before:  # submitit's handlers stay
            signal.signal(s, after)


def swept_keys(config: DictConfig) -> list[str]:
    """The keys a sweep varies: those its command line sweeps (a,b / choice / range /
    interval / glob) and its sweeper's `params`, in the order given."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = [
        o.key_or_group
        for o in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
        if o.is_sweep_override()
    ]
    keys += list((config.hydra.sweeper.get("params") or {}).keys())
    return list(dict.fromkeys(keys))


def between_jobs() -> None:
    """A worker between jobs: a Ctrl-C or stop signal while it waits would kill it, not a job."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    take_stop_signals(job_starts=False)


class SweepEnded(BaseException):
    """How a sweep ended, where it did not simply complete: stopped (`interrupted`, by
    `stopped_by`: None for Ctrl-C), or with `failed` jobs ((job directory, reason) each). Raised
    from the sweep's end to `train.main`, past Hydra, which turns a callback's Exception into
    a warning."""

    def __init__(
        self,
        sweep_dir: str,
        interrupted: bool,
        stopped_by: stops.Stopped | None,
        failed: list[tuple[str, str]],
    ) -> None:
        super().__init__(sweep_dir)
        self.sweep_dir, self.interrupted, self.stopped_by, self.failed = (
            sweep_dir,
            interrupted,
            stopped_by,
            failed,
        )


def jobs_in_other_processes(config: DictConfig) -> bool:
    """Whether the configured launcher runs the jobs in other processes on this machine (joblib
    with n_jobs > 1, submitit_local)."""
    if _submitit_local(config):
        return True
    launcher = config.hydra.launcher
    if not str(launcher.get("_target_")).endswith("JoblibLauncher"):
        return False
    from joblib import effective_n_jobs

    return effective_n_jobs(launcher.get("n_jobs")) > 1


def _submitit_local(config: DictConfig) -> bool:
    return str(config.hydra.launcher.get("_target_")).endswith("submitit_launcher.LocalLauncher")


def stop_sweep(directory: str | Path) -> None:
    """Have the jobs of the sweep in `directory` that have not started yet not start."""
    (Path(directory) / STOP_FILE).touch()


def sweep_stopped(directory: str | Path) -> bool:
    return (Path(directory) / STOP_FILE).exists()


def clear_stop(directory: str | Path) -> None:
    (Path(directory) / STOP_FILE).unlink(missing_ok=True)


def sweep_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """The results.json of every job directory directly under a sweep directory (one that
    does not fit the record's description counts as failed, with why)."""
    from fashion_lab.results import read_record

    jobs = []
    for path in sorted(sweep_dir.glob("*/results.json")):
        record, why = read_record(path)
        if record is None:
            record = {"status": "failed", "error": f"unreadable results.json ({why})"}
        jobs.append(record | {"job_dir": str(path.parent)})
    return jobs


class SweepReport(Callback):
    """Prints how many jobs completed now, earlier (skipped) or failed, and why each failed;
    a sweep that was stopped or had failures ends in `SweepEnded`."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()
        self.sweep_dir = str(config.hydra.sweep.dir)
        os.environ[SWEPT] = ",".join(swept_keys(config))  # the jobs' directory names show them
        self.stopped_by: stops.Stopped | None = None
        clear_stop(self.sweep_dir)  # left by an earlier, stopped run
        self.previous_handlers: dict[int, Any] = {}
        if jobs_in_other_processes(config):
            os.environ[LAUNCHER_PID] = str(os.getpid())
            for s in (signal.SIGINT, *stops.STOP_SIGNALS):
                self.previous_handlers[s] = signal.signal(s, self._stop)
            if _submitit_local(config):
                adapters.submitit_controllers_ignore_ctrl_c()

    def _stop(self, signum: int, frame: Any) -> None:
        """The first Ctrl-C (the workers have it too) or stop signal of a parallel sweep."""
        stop_sweep(self.sweep_dir)
        for s in (signal.SIGINT, *stops.STOP_SIGNALS):  # a second one stops at once
            signal.signal(s, self._stop_at_once)
        again = "press Ctrl-C again to stop at once"
        if signum != signal.SIGINT:
            self.stopped_by = stops.Stopped(signum)
            again = f"{self.stopped_by.name} again stops at once"
            for pid in stops.child_processes():
                with contextlib.suppress(OSError):  # ended meanwhile
                    os.kill(pid, signal.SIGTERM)
        print(
            f"Stopping the sweep: its running jobs save their progress and no new job starts; "
            f"{again}.",
            file=sys.stderr,
        )

    def _stop_at_once(self, signum: int, frame: Any) -> None:
        raise SweepEnded(self.sweep_dir, True, self.stopped_by, [])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        for s, handler in self.previous_handlers.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        interrupted = sweep_stopped(self.sweep_dir)
        clear_stop(self.sweep_dir)
        jobs = sweep_jobs(Path(config.hydra.sweep.dir))
        done = [j for j in jobs if j.get("status") == "completed"]
        earlier = [j for j in done if j.get("finished_at", 0) < getattr(self, "started", 0)]
        stopped = [j for j in jobs if j.get("status") == "interrupted"]
        pruned = [j for j in jobs if j.get("status") == "pruned"]
        from fashion_lab.results import UNHEALTHY

        unhealthy = [j for j in jobs if j.get("status") in UNHEALTHY]
        apart = ("completed", "interrupted", "pruned", *UNHEALTHY)
        failed = [j for j in jobs if j.get("status") not in apart]
        failed_jobs = [
            (j["job_dir"], j.get("error", j.get("status", "?"))) for j in failed + unhealthy
        ]
        print(
            f"Sweep {config.hydra.sweep.dir}: {len(done) - len(earlier)} completed, "
            f"{len(failed)} failed, "
            + (f"{len(unhealthy)} diverged or at chance (not ranked), " if unhealthy else "")
            + (f"{len(stopped)} interrupted, " if stopped else "")
            + (f"{len(pruned)} pruned, " if pruned else "")
            + f"{len(earlier)} skipped (completed earlier).",
            file=sys.stderr,
        )
        for job_dir, reason in failed_jobs:
            print(f"  failed: {job_dir}: {reason}", file=sys.stderr)
        if interrupted or failed_jobs:
            raise SweepEnded(self.sweep_dir, interrupted, self.stopped_by, failed_jobs)
