"""The Pareto front of runs over two or more figures of their results.json (val_acc_best
against parameters, MACs per image or training time): the runs no other run beats on every
figure at once. The multi-objective search and compare both show it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fashion_lab.errors import UserError

DIRECTIONS = ("maximize", "minimize")
FIGURES = (
    "val_acc_best",
    "test_acc",
    "parameters",
    "macs_per_image",
    "train_time_s",
    "wall_time_s",
    "train_images_per_s",
)
"""The figures of a run's record that an objective may name."""


def objectives_of(spec: Mapping[str, str] | str | None, key: str) -> dict[str, str]:
    """Objectives as {figure: direction}, from a mapping or `fig:max,fig:min` text.

    Raises:
        UserError: a figure a run does not record, or a direction that is neither way.
    """
    if isinstance(spec, str):
        pairs = [p.split(":", 1) if ":" in p else [p, ""] for p in spec.split(",") if p]
        spec = {k.strip(): v.strip() for k, v in pairs}
    found: dict[str, str] = {}
    for figure, direction in (spec or {}).items():
        way = {"max": "maximize", "min": "minimize"}.get(str(direction), str(direction))
        if figure not in FIGURES or way not in DIRECTIONS:
            raise UserError(
                f"{key} maps figures of results.json to maximize or minimize, got "
                f"{figure}: {direction}; the figures: {', '.join(FIGURES)}; e.g. "
                f"{key}={{val_acc_best: maximize, parameters: minimize}}."
            )
        found[figure] = way
    return found


def _sign(direction: str) -> float:
    return 1.0 if direction == "maximize" else -1.0


def dominates(a: Mapping[str, Any], b: Mapping[str, Any], objectives: Mapping[str, str]) -> bool:
    """Whether run `a` is at least as good as `b` on every objective and better on one."""
    better = [_sign(w) * (float(a[f]) - float(b[f])) for f, w in objectives.items()]
    return all(d >= 0 for d in better) and any(d > 0 for d in better)


def front(runs: Sequence[Mapping[str, Any]], objectives: Mapping[str, str]) -> list[Any]:
    """The runs that record every objective and that no such run dominates, best first by the
    first objective."""
    scored = [r for r in runs if all(r.get(f) is not None for f in objectives)]
    kept = [r for r in scored if not any(dominates(o, r, objectives) for o in scored)]
    first, way = next(iter(objectives.items()))
    return sorted(kept, key=lambda r: -_sign(way) * float(r[first]))


def table(runs: Sequence[Mapping[str, Any]], objectives: Mapping[str, str]) -> str:
    """The front as a Markdown table: each run's directory and its figures."""
    figures = list(objectives)
    lines = [
        "| run | " + " | ".join(f"{f} ({objectives[f][:3]})" for f in figures) + " |",
        "| --- | " + " | ".join("---" for _ in figures) + " |",
    ]
    for run in runs:
        values = " | ".join(f"{float(run[f]):.6g}" for f in figures)
        lines.append(f"| {Path(str(run.get('output_dir', '?'))).name} | {values} |")
    return "\n".join(lines)


def plot(
    runs: Sequence[Mapping[str, Any]],
    objectives: Mapping[str, str],
    path: Path,
) -> None:
    """The first two objectives of every run, the front's runs joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = list(objectives)[:2]
    scored = [r for r in runs if r.get(x) is not None and r.get(y) is not None]
    best = sorted(front(scored, {x: objectives[x], y: objectives[y]}), key=lambda r: float(r[x]))
    figure, axes = plt.subplots(figsize=(6, 4.5))
    axes.scatter(
        [float(r[x]) for r in scored], [float(r[y]) for r in scored], c="0.6", label="runs"
    )
    axes.plot(
        [float(r[x]) for r in best], [float(r[y]) for r in best], "o-", c="C3", label="Pareto front"
    )
    axes.set_xlabel(f"{x} ({objectives[x]})")
    axes.set_ylabel(f"{y} ({objectives[y]})")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
