"""Kill a real run with SIGKILL mid-epoch, resume it, compare with an uninterrupted run.

    python experiments/resume/kill_and_resume.py [--epochs 3] [--kill-into-epoch 0.4] [overrides...]

Both runs use the same seed and `trainer.deterministic=true`, on the CPU. The killed run is
resumed with `python -m fashion_lab ckpt_path=<its run directory>`, which continues in the
same directory from `checkpoints/last.ckpt`. Prints one JSON line per run and whether the
final metrics are identical.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
METRICS = ("val_acc", "val_acc_best", "val_loss", "test_acc", "test_loss")


def fashion_lab(*args: str) -> list[str]:
    return [sys.executable, "-m", "fashion_lab", *args, "trainer.enable_progress_bar=false"]


def results(log_dir: Path) -> dict:
    [path] = log_dir.glob("runs/*/results.json")
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--kill-into-epoch",
        type=float,
        default=0.4,
        help="kill this fraction of an epoch after the first last.ckpt appears",
    )
    parser.add_argument("--out", default=str(REPO / "outputs" / "resume_demo"))
    parser.add_argument("overrides", nargs="*")
    a = parser.parse_args()
    out = Path(a.out) / time.strftime("%Y-%m-%d_%H-%M-%S")
    recipe = [
        f"trainer.max_epochs={a.epochs}",
        "trainer.deterministic=true",
        "seed=0",
        "trainer=cpu",
        *a.overrides,
    ]

    started = time.perf_counter()
    subprocess.run(
        fashion_lab(*recipe, f"paths.log_dir={out / 'whole'}"),
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    epoch_seconds = (time.perf_counter() - started) / a.epochs

    killed_dir = out / "killed"
    process = subprocess.Popen(
        fashion_lab(*recipe, f"paths.log_dir={killed_dir}"),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not list(killed_dir.glob("runs/*/checkpoints/last.ckpt")):
        if process.poll() is not None:
            sys.exit("the run ended before it could be killed")
        time.sleep(0.1)
    time.sleep(a.kill_into_epoch * epoch_seconds)
    if process.poll() is not None:
        sys.exit("the run ended before it could be killed")
    process.send_signal(signal.SIGKILL)
    process.wait()
    [run_dir] = killed_dir.glob("runs/*")
    last = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)
    killed = {
        "killed_in_epoch": last["epoch"] + 1,
        "last_ckpt_epoch": last["epoch"],
        "last_ckpt_step": last["global_step"],
        "results_json_before_resume": (run_dir / "results.json").exists(),
    }

    subprocess.run(
        fashion_lab(f"ckpt_path={run_dir}", f"paths.log_dir={killed_dir}"),
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    whole, resumed = results(out / "whole"), results(killed_dir)
    print(json.dumps({"run": "uninterrupted", **{k: whole[k] for k in METRICS}}))
    print(
        json.dumps(
            {
                "run": "killed+resumed",
                **killed,
                **{k: resumed[k] for k in METRICS},
                "same_directory": resumed["output_dir"] == str(run_dir),
            }
        )
    )
    same = all(whole[k] == resumed[k] for k in METRICS)
    print(json.dumps({"identical_final_metrics": same, "outputs": str(out)}))
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
