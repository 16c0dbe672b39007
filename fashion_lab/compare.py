"""Compare runs: a leaderboard over seeds, and plots, from run and sweep directories.

    python -m fashion_lab.compare DIR [DIR ...] [--out DIR]

Every `results.json` below the given directories is one run; one that cannot be read is named
and counted, never dropped silently. Runs are grouped by the overrides that vary between them,
seeds excepted, so each group's seeds give a mean and a standard deviation, and each group's
difference in mean test accuracy from the best group a 95% confidence interval (paired by seed
where both groups have the same seeds), and its wall seconds to a validation accuracy (--to).
Writes leaderboard.md, leaderboard.csv, val_acc_per_epoch.png, val_acc_vs_time.png,
test_acc_vs_parameters.png and difference_from_best.png (into --out, by default the first
directory) and prints the table. --rank time orders the groups by their time to --to; --against
TEXT gives the intervals against the group whose name holds TEXT (a control) instead.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from fashion_lab.callbacks import ACCURACY_MARKS
from fashion_lab.cli import command
from fashion_lab.config import check_writable
from fashion_lab.errors import UserError
from fashion_lab.results import UNHEALTHY, read_record

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
    "vs_best",
    "val_acc_best",
    "parameters",
    "macs",
    "rf",
    "train_time_s",
    "train_images_per_s",
    "time_to_val_acc",
)
RANKINGS = ("test_acc", "time")
"""What the rows are ordered by: mean test accuracy (highest first), or mean wall seconds to the
validation accuracy of `--to` (fewest first; groups where a run never reached it last)."""


def load_runs(directories: Iterable[str | Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every results.json below the directories (each given directory may be a run): the
    runs that fit the record's description (`results.RECORD`), and 'PATH (why)' for each one
    that does not."""
    runs, unreadable = [], []
    for directory in directories:
        directory = Path(directory)
        if not directory.is_dir():
            raise UserError(f"{directory} is not a directory; give run or sweep directories.")
        for path in sorted(directory.rglob("results.json")):
            run, why = read_record(path)
            if run is None:
                unreadable.append(f"{path} ({why})")
                continue
            run["run_dir"] = str(path.parent)
            runs.append(run)
    if not runs:
        where = ", ".join(map(str, directories))
        if unreadable:
            raise UserError(
                f"None of the {len(unreadable)} results.json under {where} can be read "
                f"({'; '.join(unreadable[:3])}); rerun those runs or point at others."
            )
        raise UserError(
            f"No results.json under {where}; point at run or sweep "
            "directories (outputs/runs/..., outputs/multiruns/...)."
        )
    return runs, unreadable


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


def architecture(run: dict[str, Any], trusted: Sequence[str] = ()) -> dict[str, int] | str | None:
    """Multiply-adds per image and receptive field of a run's network, rebuilt from the config
    it saved (config.yaml, or .hydra's) once `trust.check` let it through; the sentence of a
    refusal; None when there is no config or it no longer builds."""
    import yaml

    from fashion_lab import build, receptive, trust

    path = Path(run["run_dir"], "config.yaml")
    if not path.is_file():  # a run of an earlier version: Hydra's record of its config
        path = Path(run["run_dir"], ".hydra", "config.yaml")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return None
        model = (yaml.safe_load(path.read_text()) or {}).get("model")
        trust.check(model, str(path), trusted, "--trust {}", "model")
        return receptive.summary(build.network(model))
    except UserError as e:
        return str(e) if isinstance(e, trust.Untrusted) else None
    except Exception:  # an old or foreign run: its row shows "-"
        return None


MAX_CONFIG_BYTES = 2**20
"""A run's config.yaml is a few KB; a larger one is not read."""


def _mean_std(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def seconds_to(run: dict[str, Any], mark: float) -> float | None:
    """The run's wall seconds from its start to its first validation accuracy of `mark` or
    more (its record's `time_to_val_acc_s`), None if it never got there."""
    return (run.get("time_to_val_acc_s") or {}).get(f"{mark:.2f}")


def _time_to(runs: list[dict[str, Any]], mark: float) -> tuple[str, float]:
    """The time-to-accuracy cell of a group's completed runs and its rank key (infinite where
    a run never reached `mark`)."""
    times = [seconds_to(r, mark) for r in runs]
    reached = [t for t in times if t is not None]
    if not times:
        return "-", math.inf
    cell = f"{mark:.0%}: {_mean_std(reached, digits=0)} s" if reached else f"{mark:.0%}: never"
    if len(reached) < len(times):
        cell += f" ({len(reached)} of {len(times)} got there)"
    return cell, statistics.fmean(reached) if len(reached) == len(times) else math.inf


def leaderboard(
    groups: dict[str, list[dict[str, Any]]],
    trusted: Sequence[str] = (),
    notes: list[str] | None = None,
    rank: str = "test_acc",
    mark: float = 0.93,
) -> list[dict[str, str]]:
    """One row per group, from its completed runs only, best first by `rank` (`RANKINGS`); a
    test accuracy over part of the test split says so. A network that may not be rebuilt
    (`trust`) adds its sentence to `notes`."""
    from fashion_lab.results import partial_test

    rows = []
    for name, runs in groups.items():
        done = [r for r in runs if r.get("status") == "completed"]

        def values(key: str, runs: list[dict[str, Any]] = done) -> list[float]:
            return [float(r[key]) for r in runs if r.get(key) is not None]

        test = values("test_acc")
        time_cell, time_key = _time_to(done, mark)
        partial = sorted({partial_test(r) for r in done} - {""})
        arch = architecture(runs[0], trusted)
        if isinstance(arch, str):
            if notes is not None:
                notes.append(f"MACs and receptive field of {name} not computed: {arch}")
            arch = None
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
                "time_to_val_acc": time_cell,
                "_sort": time_key if rank == "time" else -statistics.fmean(test) if test else 1.0,
            }
        )
    rows.sort(key=lambda row: row.pop("_sort"))
    return rows


def difference(runs: list[dict[str, Any]], best: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean test accuracy of `runs` minus that of `best`, in points, with a 95% confidence
    interval: Student's t over per-seed differences where both have the same seeds (each
    once), else Welch's. None with fewer than two runs on either side."""
    from scipy import stats

    def by_seed(group: list[dict[str, Any]]) -> list[tuple[Any, float]]:
        return [
            (r.get("seed"), float(r["test_acc"]) * 100)
            for r in group
            if r.get("status") == "completed" and r.get("test_acc") is not None
        ]

    a, b = by_seed(runs), by_seed(best)
    if len(a) < 2 or len(b) < 2:
        return None
    seeds_a, seeds_b = [s for s, _ in a], [s for s, _ in b]
    paired = (
        None not in seeds_a
        and len(set(seeds_a)) == len(seeds_a) == len(seeds_b) == len(set(seeds_b))
        and set(seeds_a) == set(seeds_b)
    )
    if paired:
        accuracy_b = dict(b)
        diffs = [acc - accuracy_b[seed] for seed, acc in a]
        mean, se = statistics.fmean(diffs), statistics.stdev(diffs) / len(diffs) ** 0.5
        df = len(diffs) - 1
    else:
        xa, xb = [acc for _, acc in a], [acc for _, acc in b]
        va, vb = statistics.variance(xa) / len(xa), statistics.variance(xb) / len(xb)
        mean, se = statistics.fmean(xa) - statistics.fmean(xb), (va + vb) ** 0.5
        df = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1)) if se else 1
    half = float(stats.t.ppf(0.975, df)) * se
    return {
        "difference": mean,
        "low": mean - half,
        "high": mean + half,
        "paired": paired,
        "tied": mean - half <= 0 <= mean + half,
    }


def _vs_best(d: dict[str, Any] | None) -> str:
    if d is None:
        return "- (fewer than 2 runs)"
    how = "paired by seed" if d["paired"] else "unpaired"
    tie = ", cannot be told apart" if d["tied"] else ""
    return f"{d['difference']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] {how}{tie}"


def reference_group(names: Sequence[str], against: str) -> str:
    """The one group whose name holds `against` (e.g. model=plain).

    Raises:
        UserError: none or several do.
    """
    found = [name for name in names if against in name]
    if len(found) != 1:
        which = "no group" if not found else f"{len(found)} groups"
        raise UserError(
            f"--against {against} names {which} of the tested ones ({'; '.join(names)}); give "
            "text that only one group's name holds."
        )
    return found[0]


def add_differences(
    rows: list[dict[str, str]], groups: dict[str, list[dict[str, Any]]], against: str | None = None
) -> dict[str, dict[str, Any] | None]:
    """Fill each row's `vs_best`: the difference from the best (the group of the highest mean
    test accuracy, however the rows are ranked), or from the group `against` names; return the
    intervals by group.

    Raises:
        UserError: `against` names no tested group, or several.
    """

    def mean_test(name: str) -> float:
        tested = [r.get("test_acc") for r in groups[name] if r.get("status") == "completed"]
        return statistics.fmean(t for t in tested if t is not None)

    tested = [row["group"] for row in rows if row["test_acc"] != "-"]
    tested.sort(key=mean_test, reverse=True)
    if against is not None:
        reference = reference_group(tested, against)
        tested.remove(reference)
        tested.insert(0, reference)
    intervals: dict[str, dict[str, Any] | None] = {}
    for row in rows:
        name = row["group"]
        if not tested or name not in tested:
            row["vs_best"] = "-"
        elif name == tested[0]:
            row["vs_best"] = "best" if against is None else "reference"
        else:
            intervals[name] = difference(groups[name], groups[tested[0]])
            row["vs_best"] = _vs_best(intervals[name])
    return intervals


def plot_differences(intervals: dict[str, dict[str, Any] | None], best: str, path: Path) -> None:
    """Each group's difference from the best with its 95% interval."""
    drawn = {name: d for name, d in intervals.items() if d is not None}
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.4 * len(drawn)), layout="constrained")
    for i, d in enumerate(drawn.values()):
        error = [[d["difference"] - d["low"]], [d["high"] - d["difference"]]]
        color = "tab:gray" if d["tied"] else "tab:red"
        ax.errorbar(d["difference"], i, xerr=error, fmt="o", color=color, capsize=4)
    ax.set_yticks(range(len(drawn)), list(drawn))
    ax.axvline(0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel(f"test accuracy minus {best}'s (points, 95% CI; gray: cannot be told apart)")
    ax.set_title(f"Difference in mean test accuracy from {best}")
    ax.grid(alpha=0.3)
    if not drawn:
        ax.text(0.5, 0.5, "nothing to plot", ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(rows: list[dict[str, str]], reference: str = "best") -> str:
    header = (
        "group",
        "runs",
        "failed",
        "test acc %",
        f"vs {reference}, points (95% CI)",
        "best val acc %",
        "parameters",
        "MACs/image",
        "receptive field",
        "train s",
        "train img/s",
        "s to val acc",
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


def plot_val_against_time(groups: dict[str, list[dict[str, Any]]], path: Path) -> int:
    """Each completed run's validation accuracy against its wall seconds from its start (one
    line per run, a colour per group); returns the runs drawn."""
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    drawn = 0
    for index, (name, runs) in enumerate(groups.items()):
        for number, run in enumerate(r for r in runs if r.get("status") == "completed"):
            points = [
                (h["elapsed_s"], h["val/acc"] * 100)
                for h in run.get("history", [])
                if h.get("elapsed_s") is not None and h.get("val/acc") is not None
            ]
            if points:
                label = name if number == 0 else None
                ax.plot(*zip(*points, strict=True), color=f"C{index}", alpha=0.7, label=label)
                drawn += 1
    ax.set_ylim(bottom=max(ax.get_ylim()[0], 80))
    _save(
        fig,
        ax,
        path,
        "wall seconds from the run's start",
        "validation accuracy (%)",
        "Validation accuracy against wall time (one line per run)",
    )
    return drawn


def plot_accuracy_vs_parameters(groups: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Each completed run's test accuracy against its parameter count."""
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for name, runs in groups.items():
        points = [
            (r["parameters"], r["test_acc"] * 100)
            for r in runs
            if r.get("status") == "completed"
            and r.get("test_acc") is not None
            and r.get("parameters") is not None
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


def compare(
    directories: Sequence[str | Path],
    out: str | Path | None = None,
    trusted: Sequence[str] = (),
    pareto: Mapping[str, str] | None = None,
    rank: str = "test_acc",
    mark: float = 0.93,
    against: str | None = None,
) -> str:
    """Write the leaderboard and plots; return the Markdown table, and beneath it the runs not
    ranked (diverged, at chance), the results.json files left out and what was not rebuilt;
    with `pareto` ({figure: direction}), the completed runs' Pareto front too (pareto.md,
    pareto.png). `rank` and `mark`: see `leaderboard`; `against`: see `add_differences`."""
    runs, unreadable = load_runs(directories)
    groups = group_runs(runs)
    notes: list[str] = []
    rows = leaderboard(groups, trusted, notes, rank, mark)
    intervals = add_differences(rows, groups, against)
    out = Path(out or directories[0])
    check_writable(out, "--out")
    reference = next((row["group"] for row in rows if row["vs_best"] == "reference"), "best")
    report = markdown(rows, reference)
    unhealthy = [r for r in runs if r["status"] in UNHEALTHY]
    if unhealthy:
        report += f"\n\nNot ranked: {len(unhealthy)} runs that learned nothing worth ranking: "
        report += "; ".join(
            f"{r['run_dir']} ({r['status']}: {r.get('error') or '-'})" for r in unhealthy
        )
    if unreadable:
        report += f"\n\nLeft out: {len(unreadable)} results.json that cannot be read: " + "; ".join(
            unreadable
        )
    if notes:
        report += "\n\n" + "\n".join(notes)
    if pareto:
        report += "\n\n" + pareto_front(runs, pareto, out)
    (out / "leaderboard.md").write_text(report + "\n")
    with open(out / "leaderboard.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    plot_val_curves(groups, out / "val_acc_per_epoch.png")
    plot_accuracy_vs_parameters(groups, out / "test_acc_vs_parameters.png")
    plot_val_against_time(groups, out / "val_acc_vs_time.png")
    best = next(
        (row["group"] for row in rows if row["vs_best"] in ("best", "reference")), "the best"
    )
    plot_differences(intervals, best, out / "difference_from_best.png")
    return report


def pareto_front(runs: list[dict[str, Any]], objectives: Mapping[str, str], out: Path) -> str:
    """The completed runs that no other beats on every objective: a table, also in pareto.md,
    and a plot of the first two objectives with the front drawn (pareto.png)."""
    from fashion_lab import pareto

    done = [r | {"output_dir": r["run_dir"]} for r in runs if r.get("status") == "completed"]
    best = pareto.front(done, objectives)
    said = f"Pareto front ({len(best)} of {len(done)} completed runs):\n\n"
    said += pareto.table(best, objectives)
    (out / "pareto.md").write_text(said + "\n")
    if len(done) > 1 and len(objectives) > 1:
        pareto.plot(done, objectives, out / "pareto.png")
    return said


@command
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fashion_lab.compare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("directories", nargs="+", help="run or sweep directories")
    parser.add_argument("--out", help="where to write the report (default: the first directory)")
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="NAME",
        help="a network's _target_ that the runs' configs may build (fashion_lab's own always)",
    )
    parser.add_argument(
        "--pareto",
        metavar="FIGURE:DIRECTION,...",
        help="the Pareto front over figures of results.json, e.g. "
        "val_acc_best:max,parameters:min (pareto.md, pareto.png)",
    )
    parser.add_argument(
        "--rank",
        choices=RANKINGS,
        default="test_acc",
        help="order the groups by mean test accuracy, or by mean wall seconds to --to",
    )
    parser.add_argument(
        "--to",
        type=float,
        choices=ACCURACY_MARKS,
        default=0.93,
        help="the validation accuracy whose time from each run's start is shown (and ranked)",
    )
    parser.add_argument(
        "--against",
        metavar="TEXT",
        help="intervals against the group whose name holds TEXT (e.g. a control: "
        "model=plain), not against the best",
    )
    args = parser.parse_args(argv)
    from fashion_lab.pareto import objectives_of

    objectives = objectives_of(args.pareto, "--pareto") if args.pareto else None
    print(
        compare(
            args.directories, args.out, args.trust, objectives, args.rank, args.to, args.against
        )
    )


if __name__ == "__main__":
    main()
