"""Errors a user can cause and fix: each carries one sentence that says what to do."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem the user can fix (bad override, missing data, no GPU, diverging run).

    The message is shown as it is, without a stack trace, and the process exits non-zero.
    """


class DataError(UserError):
    """The dataset is missing, damaged or cannot be fetched."""


class RunInterrupted(Exception):
    """The user stopped the run (Ctrl-C); the message says how to continue it.

    Not a UserError: a sweep goes on past a job's UserError, but stops when interrupted.
    """


def command(main: Callable[..., None]) -> Callable[..., None]:
    """A command's `main`: a UserError ends in its sentence and exit 2, Ctrl-C in exit 130,
    neither with a stack trace."""

    @functools.wraps(main)
    def run(*args, **kwargs) -> None:
        try:
            main(*args, **kwargs)
        except UserError as e:
            print(f"Error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("Interrupted; run the command again.", file=sys.stderr)
            sys.exit(130)

    return run
