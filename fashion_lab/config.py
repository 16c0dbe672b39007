"""Where the configs live, and the resolvers they use."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "conf"


def repo_root() -> str:
    """The repository root: configs and the default data and output folders live there."""
    return str(REPO_ROOT)


def register_resolvers() -> None:
    """Make `${fashion_lab.root:}` available to the configs (idempotent)."""
    if not OmegaConf.has_resolver("fashion_lab.root"):
        OmegaConf.register_new_resolver("fashion_lab.root", repo_root)


register_resolvers()
