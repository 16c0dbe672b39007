"""What a config read from a file may name: the one gate between stored data and code.

A checkpoint's stored config (evaluate, predict, inspect, a resume) and a run's saved
`config.yaml` (compare) are data: every `_target_` in them, at any depth (options,
`_args_`, partials), must be one fashion_lab builds by itself (`builtin_targets`), one the user
named in the config of this command (their command line and config folders), or one they
trust on purpose with `trust=[dotted.Name, ...]`. Anything else is refused before it is imported,
as `torch.load(weights_only=True)` refuses globals not added with `add_safe_globals`.
Names match whole: a module's attributes lead anywhere (`torch.optim.optimizer.torch.save`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from fashion_lab.errors import UserError

FAMILIES = (
    ("torch.optim", "Optimizer"),
    ("torch.optim.lr_scheduler", "LRScheduler"),
    ("pytorch_lightning.callbacks", "Callback"),
    ("pytorch_lightning.loggers", "Logger"),
)
"""(module, base class in it): the module's public classes that derive from the base are
trusted by their name in that module (torch.optim.SGD, not torch.optim.sgd.SGD)."""

_TARGET_LINE = re.compile(r"^\s*_target_:\s*([\w.]+)\s*$", re.MULTILINE)


class Untrusted(UserError):
    """A config read from a file names a target nobody trusted."""


@functools.cache
def builtin_targets() -> frozenset[str]:
    """The targets fashion_lab trusts by itself: those its own conf/ names, the zoo's builders,
    fashion_lab's own callbacks, and the public classes of `FAMILIES`."""
    import importlib

    import pytorch_lightning as pl

    from fashion_lab import callbacks, checkpoints
    from fashion_lab.config import CONFIG_DIR
    from fashion_lab.models import list_models
    from fashion_lab.models.registry import builder

    names = {m for f in CONFIG_DIR.rglob("*.yaml") for m in _TARGET_LINE.findall(f.read_text())}
    names |= {f"{b.__module__}.{b.__qualname__}" for b in map(builder, list_models())}
    names.add("fashion_lab.data.FashionMNISTDataModule")
    families = [(m.__name__, pl.Callback) for m in (callbacks, checkpoints)]
    families += [(m, getattr(importlib.import_module(m), base)) for m, base in FAMILIES]
    for module_name, base in families:
        names |= {
            f"{module_name}.{name}"
            for name, obj in vars(importlib.import_module(module_name)).items()
            if not name.startswith("_") and isinstance(obj, type) and issubclass(obj, base)
        }
    return frozenset(names)


def targets(config: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key, `_target_` value) in a config's plain data, at any depth."""
    if isinstance(config, Mapping):
        for key, value in config.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "_target_":
                yield where or "_target_", value
            else:
                yield from targets(value, path)
    elif isinstance(config, list | tuple):
        for i, value in enumerate(config):
            yield from targets(value, f"{where}[{i}]")


def interpolations(config: Any, where: str = "") -> Iterator[str]:
    """The keys of string values that OmegaConf would resolve (`${...}`): a stored config is
    saved resolved, so one there was not written by fashion_lab."""
    if isinstance(config, Mapping):
        for key, value in config.items():
            yield from interpolations(value, f"{where}.{key}" if where else str(key))
    elif isinstance(config, list | tuple):
        for i, value in enumerate(config):
            yield from interpolations(value, f"{where}[{i}]")
    elif isinstance(config, str) and "${" in config:
        yield where


def user_targets(config: Any) -> set[str]:
    """The targets a config composed for this command names (the user's command line and config
    folders), and the names its `trust` option lists."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(config):
        config = OmegaConf.to_container(config, resolve=False)
    config = {k: v for k, v in (config or {}).items() if k != "hydra"}
    named = {t for _, t in targets(config) if isinstance(t, str) and "${" not in t}
    return named | set(trusted_names(config.get("trust")))


def trusted_names(value: Any) -> list[str]:
    """The `trust` option's names: a list of dotted names, or one name.

    Raises:
        UserError: something else.
    """
    if value is None:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) and n for n in names):
        raise UserError(
            f"trust must list dotted names, got {value!r}; e.g. trust=[mypkg.nets.TinyNet]."
        )
    return list(names)


def check(
    config: Any,
    source: str,
    trusted: Iterable[str] = (),
    option: str = "trust=[{}]",
    where: str = "",
) -> None:
    """Refuse `config` (plain data read from `source`) unless every target it names is trusted;
    `option` is how the command's user trusts a name; `where`, the key `config` is at.

    Raises:
        Untrusted: a target neither fashion_lab, this command's config nor `trust` names, or a
            config that is not one fashion_lab writes (a target that is not a name, an
            interpolation).
    """
    allowed = builtin_targets() | set(trusted)
    for key in interpolations(config, where):
        raise Untrusted(
            f"{source} holds an unresolved value at {key}, which fashion_lab never writes (its "
            "configs are saved resolved); the file is damaged or was made by hand: use a "
            "checkpoint of a fashion_lab run."
        )
    for key, target in targets(config, where):
        if not isinstance(target, str):
            raise Untrusted(
                f"{source} names {target!r} as {key}._target_, which is not a dotted name; the "
                "file is damaged or was made by hand: use a checkpoint of a fashion_lab run."
            )
        if target not in allowed:
            raise Untrusted(
                f"{source} asks to build {target} ({key}), which fashion_lab does not trust by "
                f"itself, so nothing of it was imported or run; if you trust that file, add "
                f"{option.format(target)} to the command."
            )
