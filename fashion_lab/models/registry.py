"""Model registry: `@register_model`, `list_models(pattern)`, `create_model(name, **kw)`."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a builder under its function name."""
    _MODELS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(fnmatch.filter(_MODELS, pattern))


def builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered under `name`."""
    return _MODELS[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name, passing its keyword options.

    Raises:
        KeyError: the name is unknown.
        TypeError, ValueError: the builder does not take an option, or refuses its value.
    """
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; the zoo has: {', '.join(list_models())}")
    return _MODELS[name](**kwargs)


def check_positive(option: str, value: object) -> None:
    """A size option (a width, a layer's units) is a positive integer.

    Raises:
        ValueError: it is not; a zero width builds, and fails only at the first forward pass.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{option} must be a positive integer, got {value!r}")
