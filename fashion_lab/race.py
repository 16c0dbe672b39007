"""The benchmark's time-to-accuracy mode: a fashion_lab run (experiment=fast_cpu unless told
otherwise) and the Keras peer, each a cold process given the same wall-time budget, one after
the other on this machine; each one's test accuracy at the budget.

    python -m fashion_lab.benchmark --budget 300 [--keras-python PATH] [--seed 0] [overrides]

fashion_lab's run is `python -m fashion_lab budget_s=BUDGET ...`: it ends training where its
test still fits. The peer keeps its own recipe (its network, Adam at its defaults, batch 128, the
10k test set as its validation data, scored each epoch) and stops after the last epoch that
ends within the budget, judged by its previous epoch's time; its figure is the test accuracy of
that epoch. Both clocks start when the process is launched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fashion_lab.callbacks import time_to_accuracy
from fashion_lab.errors import UserError
from fashion_lab.results import read_record

PEER_UNDER_BUDGET = """
import json, runpy, sys, time
launched, budget, peer = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
import keras
epochs = []
class Budget(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.time()
    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        epochs.append({"elapsed_s": round(now - launched, 2),
                       "test_acc": round(float(logs["val_accuracy"]), 4)})
        if now + (now - self.began) > launched + budget:
            self.model.stop_training = True
fit = keras.Model.fit
def fit_under_budget(self, *args, callbacks=None, **kwargs):
    return fit(self, *args, callbacks=[*(callbacks or []), Budget()], **kwargs)
keras.Model.fit = fit_under_budget
sys.argv = [peer, *sys.argv[4:]]
runpy.run_path(peer, run_name="__main__")
print(json.dumps({"budget_epochs": epochs}))
"""
"""Runs the peer script unchanged under the Keras interpreter, with a callback added to its
`fit` that records each epoch's time from the launch and stops before an epoch that would end
past the budget."""

PEER_EPOCHS = 1000
"""The epochs the peer is asked for: the budget ends it first."""


def our_run(budget: float, seed: int, overrides: list[str], log_dir: Path) -> dict[str, Any]:
    """`python -m fashion_lab` under the budget, as a user starts it; its record and its wall
    seconds from launch to exit.

    Raises:
        UserError: the run failed (its last line of error output said).
    """
    command = [
        sys.executable,
        "-m",
        "fashion_lab",
        "experiment=fast_cpu",
        f"budget_s={budget:g}",
        f"seed={seed}",
        f"paths.log_dir={log_dir}",
        "trainer.enable_progress_bar=false",
        "print_config=false",
        *overrides,
    ]
    launched = time.time()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.time() - launched
    records = sorted(log_dir.rglob("results.json"))
    record = read_record(records[-1])[0] if records else None
    if done.returncode != 0 or record is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"The fashion_lab run under the budget failed ({last}); run it alone.")
    return {
        "test_acc": record.get("test_acc"),
        "val_acc_best": record.get("val_acc_best"),
        "epochs": record.get("epochs"),
        "model": record.get("model"),
        "precision": record.get("precision"),
        "wall_s": round(wall, 1),
        "time_to_val_acc_s": record.get("time_to_val_acc_s"),
        "run_dir": str(records[-1].parent),
    }


def peer_run(python: str, peer: Path, budget: float, data_dir: Path, seed: int) -> dict[str, Any]:
    """The Keras peer under the budget: its test accuracy after the last epoch it finished.

    Raises:
        UserError: the peer failed or finished no epoch within the budget.
    """
    launched = time.time()
    args = ["--epochs", str(PEER_EPOCHS), "--data-dir", str(data_dir), "--seed", str(seed)]
    command = [python, "-c", PEER_UNDER_BUDGET, str(launched), str(budget), str(peer), *args]
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.time() - launched
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"The Keras peer failed under {python} ({last}); install it as "
            "../shared/peers/keras_seed_cnn.py says, or drop --keras-python."
        )
    epochs = json.loads(lines[-1])["budget_epochs"]
    within = [e for e in epochs if e["elapsed_s"] <= budget]
    if not within:
        raise UserError(f"The Keras peer finished no epoch in {budget:g} s; raise --budget.")
    # the peer's epochs as a run's history, its test accuracy in place of a validation's
    reached = time_to_accuracy(
        [{"elapsed_s": e["elapsed_s"], "val/acc": e["test_acc"]} for e in within]
    )
    return {
        "test_acc": within[-1]["test_acc"],
        "epochs": len(within),
        "wall_s": round(wall, 1),
        "time_to_test_acc_s": reached,
        "per_epoch": epochs,
    }


def race(args, data_dir: Path, peer: Path) -> dict[str, Any]:
    """Both runs under `args.budget`; the report (the peer, the script `peer`, only with
    `args.keras_python`)."""
    report: dict[str, Any] = {"budget_s": args.budget, "seed": args.seed}
    with tempfile.TemporaryDirectory() as tmp:
        report["fashion_lab"] = our_run(args.budget, args.seed, args.overrides, Path(tmp))
        report["fashion_lab"].pop("run_dir")
    if args.keras_python:
        report["keras"] = peer_run(args.keras_python, peer, args.budget, data_dir, args.seed)
    report["date"] = time.strftime("%Y-%m-%d")
    return report


def table(report: dict[str, Any]) -> str:
    """The report, readable: each run's test accuracy at the budget, epochs and wall time."""
    lines = [f"budget: {report['budget_s']:g} s of wall time from launch, seed {report['seed']}"]
    for name in ("fashion_lab", "keras"):
        if name in report:
            r = report[name]
            lines.append(
                f"{name:12s} test acc {r['test_acc']:.4f} after {r['epochs']} epochs, "
                f"process {r['wall_s']:.0f} s"
            )
    return "\n".join(lines)
