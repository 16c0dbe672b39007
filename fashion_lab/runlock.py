"""One run, one directory: a live run holds a lock on its directory, and a second process given
that directory is refused at start, before Hydra writes anything into it.

The lock is `flock` on `<run dir>/.lock`, which holds the pid of the process that created or
holds the directory: the operating system lets go of the lock when the process ends, however it
ends, so a crashed run never leaves its directory locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fashion_lab.errors import UserError
from fashion_lab.logs import is_rank_zero

LOCK = ".lock"


def holder(directory: str | os.PathLike) -> int | None:
    """The pid `directory`'s lock file names (its creator or the run that holds it), if any."""
    try:
        return int((Path(directory) / LOCK).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def mark(directory: str | os.PathLike) -> None:
    """Name this process in `directory`'s lock file (it just created the directory); a full
    disk leaves it unnamed."""
    with contextlib.suppress(OSError):
        (Path(directory) / LOCK).write_text(f"{os.getpid()}\n")


class DirectoryLock:
    """The lock on one run directory, taken by `take` and let go by `release` (both idempotent).
    Where this process holds the directory already (a single run's, taken by `RunLock` before
    Hydra wrote into it), `take` leaves that hold as it is."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.fd: int | None = None

    def take(self) -> DirectoryLock:
        """Hold the directory; distributed training's extra processes take nothing.

        Raises:
            UserError: another live process holds it.
        """
        if self.fd is not None or not is_rank_zero():
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = holder(self.run_dir)
            if pid == os.getpid():  # held by this process: by RunLock, for a single run
                return self
            raise UserError(
                f"{self.run_dir} is in use by a run that is still going (process "
                f"{pid or 'another process'}); wait for it to end, or give this run a directory "
                "of its own (set hydra.run.dir elsewhere, or leave it unset for a new one)."
            ) from None
        try:  # who holds it, for the refusal above; a full disk leaves it unsaid
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        self.fd = fd
        return self

    def release(self) -> None:
        """Let go of the directory if this object holds it."""
        if self.fd is not None:
            os.close(self.fd)  # closing the file releases the lock
            self.fd = None


class Refused(BaseException):
    """A lock's refusal, out of a Hydra callback: Hydra turns a callback's Exception into a
    warning and goes on, so this one is a BaseException, which `train.main` says and exits on."""


class RunLock(Callback):
    """Takes a single run's directory before Hydra writes its `.hydra/` record into it (sweep
    jobs take theirs when they start: `fashion_lab.life.RunRecord`)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.lock = DirectoryLock(config.hydra.run.dir)
        try:
            self.lock.take()
        except UserError as e:
            raise Refused(str(e)) from None

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        if hasattr(self, "lock"):
            self.lock.release()
