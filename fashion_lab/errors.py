"""Errors a user can cause and fix: each carries one sentence that says what to do."""

from __future__ import annotations

import errno
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Union


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


def _fits(value: Any, hint: Any) -> bool:
    """Whether `value` has the scalar type `hint` names; containers and other types pass."""
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if origin is Literal:
        return any(value == v and type(value) is type(v) for v in typing.get_args(hint))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    if isinstance(origin, type):  # list[float], Sequence[str]: a config list is any of them
        return isinstance(value, (origin, list, tuple))
    if origin is None and isinstance(hint, type) and isinstance(value, list):
        return issubclass(hint, (list, tuple)) or hint in (Iterable, Sequence)  # not a Path
    if origin is None and isinstance(hint, type) and not isinstance(value, dict):
        return isinstance(value, hint)  # a class such as torch.Tensor or Path
    return True


def _describe(hint: Any) -> str:
    """`int | None` -> "an integer or null"; Literals list their values."""
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        parts: list[str] = []
        for described in map(_describe, typing.get_args(hint)):
            parts += ["true", "false"] if described == "true or false" else described.split(", ")
        parts = list(dict.fromkeys(p for p in parts if p))
        if "a number" in parts and "an integer" in parts:
            parts.remove("an integer")
        return " or ".join(filter(None, [", ".join(parts[:-1]), parts[-1]]))
    if origin is Literal:
        return ", ".join(dict.fromkeys(str(v) for v in typing.get_args(hint)))
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(hint, "")


def check_types(
    target: Callable, options: Mapping[str, Any], key: str, shipped: Mapping[str, Any] = {}
) -> None:
    """Check the config at `key` against the types in `target`'s signature: Lightning's
    Trainer, for one, stores `max_epochs="abc"` as given and fails later with a stack trace.

    Raises:
        UserError: an option of a type the signature excludes.
    """
    try:
        hints = typing.get_type_hints(target.__init__ if isinstance(target, type) else target)
    except Exception:  # a signature whose annotations do not resolve: nothing to check
        return
    for name, value in options.items():
        if name in hints and not _fits(value, hints[name]):
            expected = _describe(hints[name])
            raise UserError(
                f"{key}.{name} must be {expected}, got {value!r}; "
                f"{example(target, name, key, hints[name], shipped)}."
            )


def example(
    target: Callable, name: str, key: str, hint: Any = None, shipped: Mapping[str, Any] = {}
) -> str:
    """`set it with e.g. trainer.max_epochs=6`: the value conf/ ships (`shipped`), else the
    option's default in `target`'s signature, as the override to type; without one of the
    right type, what it must be."""
    import inspect

    try:
        default = inspect.signature(target).parameters[name].default
    except (KeyError, TypeError, ValueError):
        default = inspect.Parameter.empty
    if name in shipped and (hint is None or _fits(shipped[name], hint)):
        return f"set it with e.g. {key}.{name}={shown(shipped[name])} (what conf/ ships)"
    if default is not inspect.Parameter.empty and (hint is None or _fits(default, hint)):
        return f"set it with e.g. {key}.{name}={shown(default)} (its default)"
    return f"set {key}.{name} to {_describe(hint) or 'a value it takes'}"
