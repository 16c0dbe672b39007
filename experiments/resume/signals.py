"""Stop real runs with a scheduler's signals, continue them, compare with an uninterrupted run.

    python experiments/resume/signals.py [--epochs 3] [overrides...]

Four runs of one recipe (seed 0, `trainer.deterministic=true`, the CPU):
- uninterrupted: `python -m fashion_lab RECIPE`;
- SIGTERM: the same, sent SIGTERM once its first `last.ckpt` is written, then resumed with
  `python -m fashion_lab ckpt_path=<its run directory>`;
- preemption: a one-job sweep under `hydra/launcher=submitit_local` (timeout 60 min), its job
  sent SIGUSR2 once its first `last.ckpt` is written: submitit takes it for a preemption and
  requeues the job;
- timeout: the same sweep with `hydra.launcher.timeout_min=1`: submitit's controller itself
  sends SIGUSR2 30 s before the minute is up, and requeues the job each time (three times at most).
Prints one JSON line per run (where it stopped, the status recorded then, the final metrics)
and whether every final metric equals the uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
METRICS = ("val_acc", "val_acc_best", "val_loss", "test_acc", "test_loss")


def fashion_lab(*args: str) -> list[str]:
    return [sys.executable, "-m", "fashion_lab", *args, "trainer.enable_progress_bar=false"]


def record(directory: Path) -> dict:
    [path] = directory.glob("*/results.json")
    return json.loads(path.read_text())


def signal_after_first_epoch(command: list[str], checkpoints: Path, signum: int, job: bool) -> int:
    """Run `command`, send `signum` (to the sweep's job with `job`) once a last.ckpt appears."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not list(checkpoints.glob("*/checkpoints/last.ckpt")):
        if process.poll() is not None:
            sys.exit(f"ended before the signal: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.1)
    pid = int(next(checkpoints.glob("*/.lock")).read_text()) if job else process.pid
    os.kill(pid, signum)
    process.wait()
    return process.returncode


def main() -> None:
    epochs = 3
    args = sys.argv[1:]
    if args[:1] == ["--epochs"]:
        epochs, args = int(args[1]), args[2:]
    out = REPO / "outputs" / "signals_demo" / time.strftime("%Y-%m-%d_%H-%M-%S")
    recipe = [f"trainer.max_epochs={epochs}", "trainer.deterministic=true", "seed=0", *args]
    recipe += ["trainer=cpu"]
    rows = []

    subprocess.run(fashion_lab(*recipe, f"paths.log_dir={out / 'whole'}"), check=True, cwd=REPO)
    whole = record(out / "whole" / "runs")
    rows.append({"run": "uninterrupted"} | {k: whole[k] for k in METRICS})

    stopped = out / "sigterm"
    code = signal_after_first_epoch(
        fashion_lab(*recipe, f"paths.log_dir={stopped}"), stopped / "runs", signal.SIGTERM, False
    )
    [run_dir] = (stopped / "runs").glob("*")
    then = record(stopped / "runs")
    subprocess.run(fashion_lab(f"ckpt_path={run_dir}", f"paths.log_dir={stopped}"), check=True)
    after = record(stopped / "runs")
    rows.append(
        {"run": "SIGTERM + resume", "exit": code, "status_then": then["status"]}
        | {"error_then": then["error"], "resumes": after["resumes"]}
        | {k: after[k] for k in METRICS}
    )

    for name, timeout_min, send in (("preemption", 60, True), ("timeout", 1, False)):
        sweep = out / name
        command = fashion_lab(
            "-m",
            *recipe,
            "hydra/launcher=submitit_local",
            f"hydra.sweep.dir={sweep}",
            f"hydra.launcher.timeout_min={timeout_min}",
        )
        if send:
            code = signal_after_first_epoch(command, sweep, signal.SIGUSR2, True)
        else:  # submitit's controller sends SIGUSR2 itself
            code = subprocess.run(command, cwd=REPO, capture_output=True).returncode
        after = record(sweep)
        rows.append(
            {"run": f"submitit {name}", "exit": code, "status": after["status"]}
            | {"resumes": after.get("resumes")}
            | {k: after[k] for k in METRICS}
        )

    for row in rows:
        print(json.dumps(row))
    same = all(all(row[k] == whole[k] for k in METRICS) for row in rows)
    print(json.dumps({"identical_final_metrics": same, "outputs": str(out)}))
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
