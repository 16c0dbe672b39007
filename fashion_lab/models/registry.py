"""Model registry: `@register_model`, `list_models(pattern)`, `create_model(name, **kw)`."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from torch import nn

from fashion_lab.errors import UserError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a builder under its function name."""
    _MODELS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(fnmatch.filter(_MODELS, pattern))


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name, passing its keyword options.

    Raises:
        UserError: the name is unknown or an option is not one the builder takes.
    """
    if name not in _MODELS:
        raise UserError(f"Unknown model {name!r}; choose one of: {', '.join(list_models())}.")
    try:
        return _MODELS[name](**kwargs)
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


def _bad_value(name: str, error: Exception) -> UserError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return UserError(
        f"Model {name!r} cannot be built with these options ({reason}); fix the model.* "
        f"overrides (the defaults are in conf/model/{name}.yaml)."
    )
