"""Errors a user can cause and fix: each carries one sentence that says what to do."""

from __future__ import annotations

import errno
from collections.abc import Mapping
from typing import Any


class UserError(Exception):
    """A problem the user can fix (bad override, missing data, no GPU, diverging run).

    The message is shown as it is, without a stack trace, and the process exits non-zero.
    """


class DataError(UserError):
    """The dataset is missing, damaged or cannot be fetched."""


class RunInterrupted(Exception):
    """The user (Ctrl-C) or a signal (`stops.Stopped`, in `stop`) stopped the run; the message
    says how to continue it.

    Not a UserError: a sweep goes on past a job's UserError, but stops when interrupted.
    """

    def __init__(self, message: str, stop: BaseException | None = None) -> None:
        super().__init__(message)
        self.stop = stop


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def no_space(error: BaseException | None) -> OSError | None:
    """The "No space left on device" (or "Disk quota exceeded") OSError in `error`'s chain."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in NO_SPACE:
            return error
        error = error.__cause__ or error.__context__
    return None


DETAIL_LINES = ("full_key:", "object_type=", "reference_type=", "Set the environment variable")
"""Lines of OmegaConf's and Hydra's messages that locate an error for a developer."""


def one_sentence(error: BaseException) -> str:
    """Hydra's or OmegaConf's message for `error` (and its cause) as one line, its hints kept:
    "Available options in 'model':" followed by the options, without the config search path
    or the location details."""
    parts: list[str] = []
    listing = False
    for err in (error, error.__cause__):
        if err is None or (parts and str(err).strip() in " ".join(parts)):
            continue
        for line in str(err).splitlines():
            text = line.strip()
            if text.startswith("Config search path"):
                break
            if not text or text.startswith(DETAIL_LINES):
                continue
            if listing and line[:1].isspace():  # an option under "Available options in ..."
                parts[-1] += (" " if parts[-1].endswith(":") else ", ") + text
                continue
            listing = text.endswith(":")
            parts.append(text)
    sentence = " ".join(p if p.endswith((".", ":", "?")) else f"{p};" for p in parts).rstrip(";")
    return sentence or type(error).__name__


def command_line_overrides() -> list[str]:
    """The overrides this run's command line gave (Hydra's list), or none outside a run."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def shown(value: Any) -> str:
    """A config value as an override writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(shown(v) for v in value) + "]"
    return str(value).replace(" ", "").replace("'", "")


def named_options(options: Mapping[str, Any], *texts: str) -> list[str]:
    """The keys of `options` that the first of `texts` to name any of them names (as words)."""
    import re

    for text in texts:
        keys = [k for k in options if re.search(rf"\b{re.escape(str(k))}\b", text)]
        if keys:
            return keys
    return []


def settings_to_change(
    group: str,
    overrides: list[str] | None = None,
    options: Mapping[str, Any] | None = None,
    texts: tuple[str, ...] = (),
) -> str:
    """What to type to change the settings of `group` (optimizer, trainer, ...): its options
    that `texts` name (an error's message, then the line that raised it), as the command line
    gave them or with their value (`change trainer.devices=0`); else the command line's
    overrides of the group; else where to see its settings."""
    if overrides is None:
        overrides = command_line_overrides()
    typed = {o.lstrip("+~").split("=", 1)[0]: o for o in overrides}
    options = options or {}
    if keys := named_options(options, *texts):
        return "change " + ", ".join(
            typed.get(f"{group}.{k}") or f"{group}.{k}={shown(options[k])}" for k in keys
        )
    named = [o for key, o in typed.items() if key == group or key.startswith(f"{group}.")]
    if named:
        return f"change or drop {', '.join(named)}"
    return f"change the {group}.* settings (python -m fashion_lab --cfg job lists them)"
