"""One run, one directory: a live run holds a lock on its directory, and a second process given
that directory is refused at start, before Hydra writes anything into it.

The lock is `flock` on `<run dir>/.lock`: the operating system lets go of it when the process
ends, however it ends, so a crashed run never leaves its directory locked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fashion_lab.errors import UserError, is_rank_zero

LOCK = ".lock"
_HELD: dict[str, int] = {}  # run directory -> the open lock file


def hold(run_dir: str | os.PathLike) -> None:
    """Take `run_dir` for this process (again: nothing to do); distributed training's extra
    processes take nothing.

    Raises:
        UserError: another live process holds it.
    """
    key = str(Path(run_dir).resolve())
    if key in _HELD or not is_rank_zero():
        return
    Path(key).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(key) / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise UserError(
            f"{run_dir} is in use by a run that is still going (process {holder}); wait for it "
            "to end, or give this run a directory of its own (set hydra.run.dir elsewhere, or "
            "leave it unset for a new one)."
        ) from None
    try:  # who holds it, for the refusal above; a full disk leaves it unsaid
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        pass
    _HELD[key] = fd


def release(run_dir: str | os.PathLike) -> None:
    """Let go of `run_dir` if this process holds it."""
    fd = _HELD.pop(str(Path(run_dir).resolve()), None)
    if fd is not None:
        os.close(fd)  # closing the file releases the lock


class Refused(BaseException):
    """`hold`'s refusal, out of a Hydra callback: Hydra turns a callback's Exception into a
    warning and goes on, so this one is a BaseException, which `train.main` says and exits on."""


class RunLock(Callback):
    """Takes a single run's directory before Hydra writes its `.hydra/` record into it (sweep
    jobs take theirs when they start: `fashion_lab.train.train`)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            hold(config.hydra.run.dir)
        except UserError as e:
            raise Refused(str(e)) from None

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        release(config.hydra.run.dir)
