"""Run one Optuna study twice on the same storage and print what the database holds.

    python experiments/search/study_twice.py [--first 6] [--second 10] [overrides...]

The first command runs `hparams_search=optuna` (dilated_v2, TPE, median pruner) to `--first`
trials in `outputs/search_demo/<time>/study.db`; the second, the same command with
`hydra.sweeper.n_trials=--second`, continues the study. Prints each trial (number, state,
parameters, val/acc_best or the epoch it was pruned at), the best, and whether any parameters
or job numbers repeat.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    args = sys.argv[1:]
    first, second = 6, 10
    while args[:1] in (["--first"], ["--second"]):
        if args[0] == "--first":
            first = int(args[1])
        else:
            second = int(args[1])
        args = args[2:]
    out = REPO / "outputs" / "search_demo" / time.strftime("%Y-%m-%d_%H-%M-%S")
    storage = f"sqlite:///{out / 'study.db'}"
    command = [sys.executable, "-m", "fashion_lab", "-m", "hparams_search=optuna"]
    command += [f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={out / 'sweep'}"]
    command += ["trainer.enable_progress_bar=false", *args]
    out.mkdir(parents=True, exist_ok=True)
    for n in (first, second):
        done = subprocess.run(
            [*command, f"hydra.sweeper.n_trials={n}"], cwd=REPO, capture_output=True, text=True
        )
        summary = [line for line in done.stderr.splitlines() if line.startswith("Sweep ")]
        print(json.dumps({"n_trials": n, "exit": done.returncode, "summary": summary[-1:]}))
    study = optuna.load_study(study_name="fashion_lab", storage=storage)
    trials = [t for t in study.trials if "duplicate_of" not in t.user_attrs]
    for t in trials:
        row = {"trial": t.number, "state": t.state.name, "params": t.params}
        row["value"] = t.value
        if t.intermediate_values:
            row["last_reported_epoch"] = max(t.intermediate_values)
        print(json.dumps(row))
    params = [json.dumps(t.params, sort_keys=True) for t in trials]
    jobs = sorted(int(p.name.split("_")[0]) for p in (out / "sweep").glob("[0-9]*_*"))
    print(
        json.dumps(
            {
                "trials": len(trials),
                "pruned": sum(t.state.name == "PRUNED" for t in trials),
                "duplicates_not_run": len(study.trials) - len(trials),
                "repeated_parameters": len(params) - len(set(params)),
                "job_numbers": jobs,
                "best_trial": study.best_trial.number,
                "best_value": study.best_value,
                "best_params": study.best_params,
                "outputs": str(out),
            }
        )
    )


if __name__ == "__main__":
    main()
