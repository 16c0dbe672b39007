"""The commands beside training (evaluate, predict, inspect, compare, benchmark): their one
error boundary, `command`."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from fashion_lab import stops
from fashion_lab.errors import UserError
from fashion_lab.logs import say_error


def command(main: Callable[..., None]) -> Callable[..., None]:
    """A command's `main`: a UserError ends in its sentence and exit 2, Ctrl-C or a stop
    signal (SIGTERM, ...) in exit 128 + the signal's number, neither with a stack trace."""

    @functools.wraps(main)
    def run(*args, **kwargs) -> None:
        try:
            with stops.stop_on_signals():
                main(*args, **kwargs)
        except UserError as e:
            say_error(f"Error: {e}")
            sys.exit(2)
        except KeyboardInterrupt as e:
            say_error(f"{stops.opening(e)}; run the command again.")
            sys.exit(stops.exit_code(e))

    return run
