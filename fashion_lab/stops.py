"""Signals that stop a run as Ctrl-C does: a scheduler's (SIGTERM at a time limit, a preemption
or `scancel`; SIGUSR1 and SIGUSR2, which SLURM, Lightning and submitit send ahead of a time
limit or a preemption; SIGXCPU at a CPU-time limit) and a closed terminal's SIGHUP.

Each raises `Stopped`, a KeyboardInterrupt, where the program is: Lightning and fashion_lab
then stop as at Ctrl-C (the finished epochs kept, results.json "interrupted"), and the record
names the signal. In a submitit job, submitit's own handler of its signal (which checkpoints
and requeues the job) runs once the run has recorded where it stopped (`requeue`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fashion_lab import adapters

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGXCPU)

MEANING = MappingProxyType(
    {
        "SIGINT": "Ctrl-C",
        "SIGTERM": "a scheduler's time limit or preemption, scancel, or kill",
        "SIGUSR1": "a scheduler's warning of a time limit or preemption",
        "SIGUSR2": "a scheduler's warning of a time limit or preemption",
        "SIGHUP": "the terminal closed",
        "SIGXCPU": "the CPU time limit",
    }
)


class Stopped(KeyboardInterrupt):
    """A stop signal arrived (the signal's number in `signum`); `previous` is the handler it
    had before fashion_lab's (submitit's, in a submitit job)."""

    def __init__(self, signum: int, previous: Any = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.previous = previous

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    def submitit_handler(self) -> Callable[[int, Any], None] | None:
        """submitit's handler of this signal, which checkpoints the job and requeues it."""
        owner = getattr(self.previous, "__self__", None)
        return self.previous if type(owner).__module__.startswith("submitit") else None

    @functools.cached_property
    def timed_out(self) -> bool | None:
        """Whether submitit takes this signal for its job's time limit (else a preemption);
        None outside a submitit job. Asked once: submitit logs its reckoning."""
        handler = self.submitit_handler()
        return None if handler is None else adapters.submitit_timed_out(handler)


def name(stop: BaseException | None) -> str:
    return stop.name if isinstance(stop, Stopped) else "SIGINT"


def exit_code(stop: BaseException | None) -> int:
    """The shell's code for a process ended by the signal: 128 + its number (130 for Ctrl-C)."""
    return 128 + (stop.signum if isinstance(stop, Stopped) else signal.SIGINT)


def reason(stop: BaseException | None) -> str:
    """What stopped the run, for results.json and the last line: "stopped by SIGTERM (...)"."""
    if not isinstance(stop, Stopped):
        return "stopped by the user (Ctrl-C)"
    why = MEANING[stop.name]
    timed_out = stop.timed_out
    if timed_out is not None:
        why = "submitit: the job's time limit is near" if timed_out else "submitit: preempted"
    return f"stopped by {stop.name} ({why})"


def opening(stop: BaseException | None) -> str:
    """How the last line of a stopped command begins: "Interrupted" at Ctrl-C, else "Stopped by
    SIGTERM (...)"."""
    return "Interrupted" if not isinstance(stop, Stopped) else "S" + reason(stop)[1:]


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within it, the first stop signal raises Stopped in the main thread; later ones are logged
    and ignored while the run saves its record. A signal already ignored (nohup) stays so."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler_for(previous: Any) -> Callable[[int, Any], None]:
        def handler(signum: int, frame: Any) -> None:
            if fired:
                log.warning(f"{signal.Signals(signum).name} again: still saving, please wait.")
                return
            fired.append(signum)
            raise Stopped(signum, previous)

        return handler

    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    taken = [s for s, old in previous.items() if old is not signal.SIG_IGN]
    for s in taken:
        signal.signal(s, handler_for(previous[s]))
    try:
        yield
    finally:
        for s in taken:
            signal.signal(s, previous[s] if previous[s] is not None else signal.SIG_DFL)


def requeue(stop: Stopped) -> str | None:
    """Hand a stopped submitit job to submitit's own handler, which checkpoints and requeues it
    and ends the process (SystemExit); the reason it gives when it does not requeue (the time
    limit reached too many times, `max_num_timeout`), or None outside a submitit job."""
    handler = stop.submitit_handler()
    if handler is None:
        return None
    try:
        handler(stop.signum, None)
    except Exception as e:  # submitit's UncompletedJobError: "Job not requeued because: ..."
        return str(e)
    return "submitit did not requeue it"


def child_processes() -> list[int]:
    """This process's children (Linux /proc), but the launcher's resource tracker, which keeps
    no job and would leave its semaphores behind."""
    pids: list[int] = []
    for listing in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in listing.read_text().split()]
    kept = []
    for pid in dict.fromkeys(pids):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmdline:
            kept.append(pid)
    return kept
