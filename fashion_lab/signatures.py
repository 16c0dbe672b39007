"""A constructor's signature as the check of the options a config gives it: Lightning's
Trainer, for one, stores `max_epochs="abc"` as given and fails later with a stack trace."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Union

from fashion_lab.errors import UserError, shown


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
