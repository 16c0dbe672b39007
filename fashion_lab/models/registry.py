"""Model registry: `@register_model`, `list_models(pattern)`, `create_model(name, **kw)`."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable

from torch import nn

from fashion_lab.errors import UserError, check_types

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
        UserError: the name is unknown or an option is not one the builder takes.
    """
    if name not in _MODELS:
        raise UserError(f"Unknown model {name!r}; choose one of: {', '.join(list_models())}.")
    builder = _MODELS[name]
    for takes_options in _option_takers(builder):
        check_types(takes_options, kwargs, "model")
    try:
        return builder(**kwargs)
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise _bad_value(name, e) from None
        option = str(e).rsplit(" ", 1)[-1]
        raise UserError(
            f"Model {name!r} has no option {option}; remove it (the options are in its builder's "
            f"docstring and conf/model/{name}.yaml)."
        ) from None
    except (ValueError, RuntimeError) as e:  # a layer refused a value (dropout 2, width -1)
        raise _bad_value(name, e) from None


def _option_takers(builder: Callable[..., nn.Module]) -> list[Callable[..., nn.Module]]:
    """The builder, and the class it returns: it takes the options the builder's **kwargs
    passes on."""
    try:
        built = inspect.signature(builder, eval_str=True).return_annotation
    except NameError:  # an annotation that does not resolve: the builder alone
        built = None
    return [builder, built] if isinstance(built, type) else [builder]


def _bad_value(name: str, error: Exception) -> UserError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return UserError(
        f"Model {name!r} cannot be built with these options ({reason}); fix the model.* "
        f"overrides (the defaults are in conf/model/{name}.yaml)."
    )


def check_positive(option: str, value: object) -> None:
    """A size option (a width, a layer's units) is a positive integer.

    Raises:
        UserError: it is not; a zero width builds, and fails only at the first forward pass.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(
            f"model.{option} must be a positive integer, got {value!r}; fix the override."
        )
