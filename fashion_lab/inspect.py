"""Per-layer table and receptive-field maps of a zoo network.

    python -m fashion_lab.inspect model=dilated_v2 [overrides...] [ckpt_path=<.ckpt or run dir>]

Prints output shape, dilation, receptive field, parameters and multiply-adds of every conv,
pooling and linear layer, with totals, and saves two figures (to --out, default
outputs/inspect/<model>, or <run>/inspect for a checkpoint): the theoretical receptive field
of the centre unit at the end of each resolution stage (input pixels that reach it, coloured
by the number of paths; gridding holes are black) and the effective receptive field (mean
|gradient| of that unit w.r.t. real test images, for the checkpoint's weights or, without
one, untrained ones).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from fashion_lab import build, receptive, trust
from fashion_lab.checkpoints import BEST, resolve_checkpoint
from fashion_lab.cli import command
from fashion_lab.config import (
    REPO_ROOT,
    check_writable,
    compose_config,
    model_name,
    read_command_line,
)
from fashion_lab.errors import UserError


def format_table(rows: list[receptive.Layer], params: int) -> str:
    """The per-layer table and its totals as aligned text."""
    header = ("layer", "type", "output", "k", "stride", "dilation", "RF", "params", "MACs")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r.name,
                r.kind,
                "x".join(map(str, r.shape)),
                str(r.kernel or ""),
                str(r.stride or ""),
                str(r.dilation) if r.kind == "Conv2d" else "",
                str(r.rf),
                f"{r.params:,}",
                f"{r.macs:,}",
            )
        )
    spatial = [r for r in rows if r.kernel]
    rf = spatial[-1].rf if spatial else 1
    macs = sum(r.macs for r in rows)
    lines.append(("total", "", "", "", "", "", str(rf), f"{params:,}", f"{macs:,}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            c.rjust(w) if i >= 3 else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "-" * len(text[0]))
    text.insert(-1, "-" * len(text[0]))
    return "\n".join(text)


def maps_figure(
    maps: dict[str, np.ndarray], rows: list[receptive.Layer], title: str, *, log: bool = False
) -> Figure:
    """One panel per layer: the map over the 28x28 input, zeros in black (log colours: path
    counts span orders of magnitude)."""
    rf = {r.name: r for r in rows}
    fig, axes = plt.subplots(1, len(maps), figsize=(3.6 * len(maps), 4), layout="constrained")
    for ax, (name, values) in zip(np.atleast_1d(axes), maps.items(), strict=True):
        cmap = plt.get_cmap("viridis").copy()
        cmap.set_bad("black")
        norm = LogNorm() if log and values.max() > 0 else None
        image = ax.imshow(np.ma.masked_equal(values, 0), cmap=cmap, norm=norm)
        fig.colorbar(image, ax=ax, shrink=0.7)
        row = rf[name]
        holes = receptive.holes(values)
        ax.set_title(
            f"{name}\n{'x'.join(map(str, row.shape[1:]))} map, RF {row.rf}"
            + (f", {holes} holes" if holes else ""),
            fontsize=9,
        )
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9, wrap=True)
    return fig


@command
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fashion_lab.inspect", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", help="folder for the figures")
    parser.add_argument(
        "--images", type=int, default=256, help="test images averaged for the effective RF"
    )
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. model=dilated_v2")
    args = parser.parse_intermixed_args(argv)
    own, overrides = read_command_line(args.overrides, ("ckpt_path", "trust"))
    ckpt, names = own.get("ckpt_path"), trust.trusted_names(own.get("trust"))
    if args.images < 1:
        raise UserError(f"--images must be at least 1, got {args.images}; e.g. --images 256.")
    with tempfile.TemporaryDirectory() as tmp:
        if ckpt:
            path = resolve_checkpoint(ckpt, REPO_ROOT / "outputs", prefer=BEST)
            net, cfg, _ = build.restore_network(path, names)
            out = Path(args.out or path.parent.parent / "inspect")
            weights = f"trained weights of {path}"
        else:
            cfg = compose_config(overrides, tmp)
            torch.manual_seed(cfg.seed or 0)
            net = build.network(cfg.model).eval()
            out = Path(args.out or REPO_ROOT / "outputs" / "inspect" / model_name(cfg))
            weights = "untrained weights"
        check_writable(out, "--out")  # creates it; said now, before the maps are computed
        rows = receptive.layer_table(net)
        params = sum(p.numel() for p in net.parameters())
        print(f"{model_name(cfg)}: {params:,} parameters")
        print(format_table(rows, params))
        layers = receptive.stage_ends(net)
        if not layers:  # a network without spatial convolutions (an MLP) has no maps to draw
            print(f"{model_name(cfg)} has no convolution wider than 1x1: no receptive-field maps.")
            return
        data = build.datamodule(cfg)
        data.setup()
        images = data.split("test")[0][: args.images].float() / 255
        images = (images - data.mean) / data.std
        theory = receptive.theoretical_rf(net, layers)
        effective = receptive.effective_rf(net, layers, images)
    name = model_name(cfg)
    figures = {
        "theoretical_rf.png": maps_figure(
            theory,
            rows,
            f"{name}: theoretical receptive field of the centre unit (paths)",
            log=True,
        ),
        "effective_rf.png": maps_figure(
            effective,
            rows,
            f"{name}: effective receptive field ({len(images)} test images, {weights})",
        ),
    }
    for filename, figure in figures.items():
        figure.savefig(out / filename, dpi=100)
        plt.close(figure)
        print(f"saved {out / filename}")


if __name__ == "__main__":
    main()
