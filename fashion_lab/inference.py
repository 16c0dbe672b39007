"""What evaluate and predict share: a trained network and its normalization from a checkpoint."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError
from torch import nn

from fashion_lab import trust
from fashion_lab.build import restore_network
from fashion_lab.checkpoints import BEST, resolve_checkpoint, unquote
from fashion_lab.config import REPO_ROOT
from fashion_lab.data import CLASS_NAMES, FashionMNISTDataModule
from fashion_lab.errors import UserError


@dataclass
class Trained:
    """A network restored for inference, on the fastest device here."""

    net: nn.Module
    cfg: DictConfig
    path: Path
    mean: float
    std: float
    device: torch.device

    @property
    def run_dir(self) -> Path:
        """The run that wrote the checkpoint (its `checkpoints/` folder's parent)."""
        return (
            self.path.parent.parent if self.path.parent.name == "checkpoints" else self.path.parent
        )

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Class probabilities of [N, 1, 28, 28] images with values in [0, 1]."""
        out = []
        for i in range(0, len(images), batch_size):
            x = (images[i : i + batch_size].to(self.device).float() - self.mean) / self.std
            out.append(self.net(x).float().softmax(dim=1).cpu())
        return torch.cat(out) if out else torch.empty(0, len(CLASS_NAMES))


def parse_args(args: list[str], prog: str, doc: str) -> tuple[str, list[str]]:
    """Split `ckpt_path=...` from the other `key=value` overrides (`trust=` among them, see
    `trusted`); `--help` prints `doc`.

    Raises:
        UserError: no ckpt_path, or an argument that is not key=value.
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("overrides", nargs="*", help="ckpt_path=... and key=value overrides")
    args = parser.parse_args(args).overrides
    bad = [a for a in args if "=" not in a]
    if bad:
        raise UserError(f"Arguments are key=value overrides, got {bad[0]!r}; e.g. ckpt_path=last.")
    ckpt = [unquote(a.split("=", 1)[1]) for a in args if a.startswith("ckpt_path=")]
    if not ckpt or not ckpt[-1]:
        raise UserError(
            "Name the checkpoint: ckpt_path=<.ckpt file or run directory> (or ckpt_path=last)."
        )
    return ckpt[-1], [a for a in args if not a.startswith("ckpt_path=")]


def trusted(overrides: list[str]) -> tuple[list[str], list[str]]:
    """The names `trust=[a.B, c.D]` lists (Hydra's syntax), and the other overrides.

    Raises:
        UserError: a `trust` value that is not a name or a list of names.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    names: list[str] = []
    for override in (o for o in overrides if o.startswith("trust=")):
        try:
            value = OverridesParser.create().parse_override(override).value()
        except HydraException as e:
            raise UserError(
                f"{override} is not a list of names ({e}); e.g. trust=[mypkg.Net]."
            ) from None
        names += trust.trusted_names(value)
    return names, [o for o in overrides if not o.startswith("trust=")]


def load_trained(ckpt_path: str, overrides: list[str] = ()) -> Trained:
    """The best checkpoint of a run (or the named file), its config with `overrides` merged in
    (e.g. data.root=...; `trust=` for the targets it may build), and the normalization it was
    trained with."""
    names, overrides = trusted(list(overrides))
    path = resolve_checkpoint(ckpt_path, REPO_ROOT / "outputs", prefer=BEST)
    net, cfg, checkpoint = restore_network(path, names)
    OmegaConf.set_struct(cfg, True)  # an unknown key is a typo, not a new option
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except ConfigKeyError as e:
        raise UserError(
            f"Unknown config key {e.full_key}; the run's keys are in its config.yaml, e.g. "
            "data.root=/data."
        ) from None
    except Exception as e:
        raise UserError(f"Invalid override ({e}); write key=value, e.g. data.root=/data.") from None
    state = checkpoint.get(FashionMNISTDataModule.__qualname__) or {}
    if state.get("mean") is None:
        raise UserError(
            f"{path} does not record the normalization it was trained with; evaluate a "
            "checkpoint written by this version of fashion_lab."
        )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return Trained(net.to(device), cfg, path, state["mean"], state["std"], device)
