"""The per-seed table of a budget study from its runs' results.json and walls.txt (each
process's wall seconds from launch to exit, written by run.sh).

    python experiments/budget_study/table.py experiments/budget_study
"""

import json
import re
import statistics
import sys
from pathlib import Path

MODELS = ("plain", "dilated_v1", "dilated_v2", "dilated_hdc", "dilated_degrid", "cnn")


def walls(directory: Path) -> dict[str, float]:
    """'<model>_seed<S>' -> the process's wall seconds."""
    found = {}
    for line in (directory / "walls.txt").read_text().splitlines():
        if match := re.match(r"(\S+) seed (\d+) rc=0 wall_s=([\d.]+)", line):
            found[f"{match[1]}_seed{match[2]}"] = float(match[3])
    return found


def main(directory: Path, runs: Path) -> None:
    wall = walls(directory)
    print(
        "| model | seed | test acc % | best val acc % | epochs | train img/s | process wall s |"
        " val 90% at s | val 92% at s | val 93% at s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for model in MODELS:
        tests = []
        for path in sorted(runs.glob(f"{model}_seed*/results.json")):
            r = json.loads(path.read_text())
            name = path.parent.name
            times = r.get("time_to_val_acc_s") or {}
            tests.append(r["test_acc"] * 100)
            print(
                f"| {model} | {r['seed']} | {r['test_acc'] * 100:.2f} | "
                f"{r['val_acc_best'] * 100:.2f} | {r['epochs']} | {r['train_images_per_s']:,.0f} | "
                f"{wall.get(name, float('nan')):.1f} | {times.get('0.90', '-')} | "
                f"{times.get('0.92', '-')} | {times.get('0.93', '-')} |"
            )
        if len(tests) > 1:
            print(
                f"| {model} | mean | {statistics.fmean(tests):.2f} ± "
                f"{statistics.stdev(tests):.2f} | | | | | | | |"
            )


if __name__ == "__main__":
    where = Path(sys.argv[1] if len(sys.argv) > 1 else "experiments/budget_study")
    main(where, where / "runs")
