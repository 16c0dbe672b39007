"""Compare runs: a leaderboard over seeds, and plots, from run and sweep directories.

    python -m fashion_lab.compare DIR [DIR ...] [--out DIR]

Every `results.json` below the given directories is one run. Runs are grouped by the overrides
that vary between them, seeds excepted, so each group's seeds give a mean and a standard
deviation. Writes leaderboard.md, leaderboard.csv, val_acc_per_epoch.png and
test_acc_vs_parameters.png (into --out, by default the first directory) and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from fashion_lab.config import check_writable
from fashion_lab.errors import UserError, command

# overrides that leave a run's figures as they are: runs differing only in these share a group
IGNORED_KEYS = (
    "seed",
    "paths.",
    "hydra.",
    "data.root",
    "data.system_dir",
    "ckpt_path",
    "print_config",
    "logger",
    "trainer.enable_",
    "trainer.log_every_n_steps",
)
COLUMNS = (
    "group",
    "runs",
    "failed",
    "test_acc",
    "val_acc_best",
    "parameters",
    "macs",
    "rf",
    "train_time_s",
    "train_images_per_s",
)


def load_runs(directories: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every readable results.json below the directories (each given directory may be a run)."""
    runs = []
    for directory in directories:
        directory = Path(directory)
        if not directory.is_dir():
            raise UserError(f"{directory} is not a directory; give run or sweep directories.")
        for path in sorted(directory.rglob("results.json")):
            try:
                run = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            run["run_dir"] = str(path.parent)
            runs.append(run)
    if not runs:
        raise UserError(
            f"No results.json under {', '.join(map(str, directories))}; point at run or sweep "
            "directories (outputs/runs/..., outputs/multiruns/...)."
        )
    return runs


def _settings(run: dict[str, Any]) -> dict[str, str]:
    settings = {"model": str(run.get("model"))}
    for override in run.get("overrides", []):
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if not key.startswith(IGNORED_KEYS):
            settings[key] = value
    return settings


def group_runs(runs: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs keyed by the settings that vary between them (seed excluded)."""
    settings = [_settings(run) for run in runs]
    keys = sorted({k for s in settings for k in s})
    varying = [k for k in keys if len({s.get(k) for s in settings}) > 1] or ["model"]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run, s in zip(runs, settings, strict=True):
        groups[" ".join(f"{k}={s.get(k, '-')}" for k in varying)].append(run)
    return dict(groups)


def architecture(run: dict[str, Any]) -> dict[str, int] | None:
    """Multiply-adds per image and receptive field of a run's network, rebuilt from the
    config in its `.hydra/` folder (None when that is missing or no longer builds)."""
    from omegaconf import OmegaConf

    from fashion_lab import build, receptive

    path = Path(run["run_dir"], ".hydra", "config.yaml")
    try:
        return receptive.summary(build.network(OmegaConf.load(path).model))
    except Exception:  # an old or foreign run: its row shows "-"
        return None


def _mean_std(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def leaderboard(groups: dict[str, list[dict[str, Any]]]) -> list[dict[str, str]]:
    """One row per group, best mean test accuracy first; a test accuracy over part of the
    test split says so."""
    from fashion_lab.results import partial_test

    rows = []
    for name, runs in groups.items():
        done = [r for r in runs if r.get("status") == "completed"]

        def values(key: str, runs: list[dict[str, Any]] = done) -> list[float]:
            return [float(r[key]) for r in runs if r.get(key) is not None]

        test = values("test_acc")
        partial = sorted({partial_test(r) for r in done} - {""})
        arch = architecture(runs[0])
        rows.append(
            {
                "group": name,
                "runs": str(len(runs)),
                "failed": str(len(runs) - len(done)),
                "test_acc": " ".join([_mean_std(test, 100), *(f"({p})" for p in partial)]),
                "val_acc_best": _mean_std(values("val_acc_best"), 100),
                "parameters": f"{int(values('parameters')[0]):,}" if values("parameters") else "-",
                "macs": f"{arch['macs'] / 1e6:.1f}M" if arch else "-",
                "rf": str(arch["rf"]) if arch else "-",
                "train_time_s": _mean_std(values("train_time_s"), digits=1),
                "train_images_per_s": _mean_std(values("train_images_per_s"), digits=0),
                "_sort": statistics.fmean(test) if test else -1.0,
            }
        )
    rows.sort(key=lambda row: row.pop("_sort"), reverse=True)
    return rows


def markdown(rows: list[dict[str, str]]) -> str:
    header = (
        "group",
        "runs",
        "failed",
        "test acc %",
        "best val acc %",
        "parameters",
        "MACs/image",
        "receptive field",
        "train s",
        "train img/s",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row[c] for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def _save(fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    else:  # e.g. runs that trainer.max_steps stopped before their first validation
        ax.text(0.5, 0.5, "nothing to plot", ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_val_curves(
    groups: dict[str, list[dict[str, Any]]], path: Path
) -> dict[str, tuple[list[int], list[float]]]:
    """Mean validation accuracy per epoch of each group (over its completed seeds); returns
    what it drew: group -> (epochs, accuracy %)."""
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    drawn = {}
    for name, runs in groups.items():
        curves = [[h.get("val/acc") for h in r.get("history", [])] for r in runs]
        curves = [c for c in curves if any(v is not None for v in c)]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        # the epochs every run validated (check_val_every_n_epoch may skip some)
        epochs = [i for i in range(length) if all(c[i] is not None for c in curves)]
        mean = [statistics.fmean(c[i] for c in curves) * 100 for i in epochs]
        drawn[name] = ([i + 1 for i in epochs], mean)
        ax.plot(*drawn[name], marker="o", label=f"{name} (n={len(curves)})")
    _save(
        fig,
        ax,
        path,
        "epoch",
        "validation accuracy (%)",
        "Validation accuracy per epoch (mean over seeds)",
    )
    return drawn


def plot_accuracy_vs_parameters(groups: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Each completed run's test accuracy against its parameter count."""
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for name, runs in groups.items():
        points = [
            (r["parameters"], r["test_acc"] * 100)
            for r in runs
            if r.get("status") == "completed" and r.get("test_acc") is not None
        ]
        if points:
            ax.scatter(*zip(*points, strict=True), label=name)
    ax.set_xscale("log")
    _save(
        fig,
        ax,
        path,
        "parameters",
        "test accuracy (%)",
        "Test accuracy against parameters (one point per run)",
    )


def compare(directories: Sequence[str | Path], out: str | Path | None = None) -> str:
    """Write the leaderboard and plots; return the Markdown table."""
    groups = group_runs(load_runs(directories))
    rows = leaderboard(groups)
    out = Path(out or directories[0])
    check_writable(out, "--out")
    table = markdown(rows)
    (out / "leaderboard.md").write_text(table + "\n")
    with open(out / "leaderboard.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    plot_val_curves(groups, out / "val_acc_per_epoch.png")
    plot_accuracy_vs_parameters(groups, out / "test_acc_vs_parameters.png")
    return table


@command
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fashion_lab.compare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("directories", nargs="+", help="run or sweep directories")
    parser.add_argument("--out", help="where to write the report (default: the first directory)")
    args = parser.parse_args(argv)
    print(compare(args.directories, args.out))


if __name__ == "__main__":
    main()
