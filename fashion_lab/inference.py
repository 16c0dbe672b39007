"""What evaluate and predict share: a trained network and its normalization from a checkpoint."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fashion_lab import trust
from fashion_lab.build import restore_network
from fashion_lab.checkpoints import BEST, resolve_checkpoint
from fashion_lab.config import REPO_ROOT, compose_stored, read_command_line
from fashion_lab.data import CLASS_NAMES, FashionMNISTDataModule
from fashion_lab.errors import UserError
from fashion_lab.module import outputs


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
            logits = outputs(self.net, x, bool(self.cfg.module.get("test_flips")))
            out.append(logits.float().softmax(dim=1).cpu())
        return torch.cat(out) if out else torch.empty(0, len(CLASS_NAMES))


def parse_args(args: list[str], prog: str, doc: str, own: tuple[str, ...] = ()) -> Arguments:
    """The command's arguments, read as training reads its command line (Hydra's grammar):
    `ckpt_path=`, `trust=[...]` and the command's `own` keys, the rest config overrides;
    `--help` prints `doc`.

    Raises:
        UserError: no ckpt_path, or an argument that is not key=value.
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("overrides", nargs="*", help="ckpt_path=... and key=value overrides")
    given = parser.parse_args(args).overrides
    values, overrides = read_command_line(given, ("ckpt_path", "trust", *own))
    ckpt = values.pop("ckpt_path", None)
    if not isinstance(ckpt, str) or not ckpt:
        raise UserError(
            "Name the checkpoint: ckpt_path=<.ckpt file or run directory> (or ckpt_path=last); "
            "quote a path that holds = or , (ckpt_path='...')."
        )
    names = trust.trusted_names(values.pop("trust", []))
    return Arguments(ckpt, names, overrides, values)


@dataclass(frozen=True)
class Arguments:
    """A checkpoint command's arguments: the checkpoint, the targets trusted (`trust=[...]`),
    config overrides, and the command's own values (predict's `images=`)."""

    ckpt_path: str
    trusted: list[str]
    overrides: list[str]
    own: dict[str, Any]


def load_trained(
    ckpt_path: str, overrides: Sequence[str] = (), trusted: Sequence[str] = ()
) -> Trained:
    """The best checkpoint of a run (or the named file), its config with `overrides` applied
    (e.g. data.root=...), the targets in `trusted` allowed to build, and the normalization it
    was trained with."""
    path = resolve_checkpoint(ckpt_path, REPO_ROOT / "outputs", prefer=BEST)
    net, cfg, checkpoint = restore_network(path, trusted)
    cfg = compose_stored(OmegaConf.to_container(cfg), overrides)
    state = checkpoint.get(FashionMNISTDataModule.__qualname__) or {}
    if state.get("mean") is None:
        raise UserError(
            f"{path} does not record the normalization it was trained with; evaluate a "
            "checkpoint written by this version of fashion_lab."
        )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return Trained(net.to(device), cfg, path, state["mean"], state["std"], device)
