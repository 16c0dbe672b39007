"""Where the configs live, and the resolvers they use."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "conf"


def repo_root() -> str:
    """The repository root: configs and the default data and output folders live there."""
    return str(REPO_ROOT)


def short_name(text: str, limit: int = 80) -> str:
    """A file-name-safe version of `text`, at most `limit` characters (a hash keeps it unique)."""
    safe = text.replace("/", "_") or "default"
    if len(safe) <= limit:
        return safe
    return f"{safe[: limit - 9]}_{hashlib.md5(safe.encode()).hexdigest()[:8]}"


def register_resolvers() -> None:
    """Make `${fashion_lab.root:}` and `${fashion_lab.short:TEXT}` available (idempotent)."""
    for name, function in (("fashion_lab.root", repo_root), ("fashion_lab.short", short_name)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


register_resolvers()


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """The run's config as plain resolved data, without Hydra's own `hydra` node."""
    return {
        key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        for key, value in cfg.items()
        if key != "hydra"
    }
