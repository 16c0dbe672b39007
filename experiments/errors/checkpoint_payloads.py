"""Hostile checkpoints against every command that reads one: what ran, and what was said.

    python experiments/errors/checkpoint_payloads.py > experiments/errors/checkpoint_payloads.md

Each payload is put in a copy of a fashion_lab checkpoint (an untrained cnn's; what it holds
besides the config does not matter here) as the stored config's model, or as a callback for the
resume; each would leave a file in the work directory if it ran. Each command is run as a user
would run it, in a process of its own; the table gives its exit code, its last line, and whether
the payload's file appeared.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from conftest import compose_run, tiny_overrides, untrained_checkpoint, write_dataset  # noqa: E402


def payloads(made: Path) -> dict[str, dict]:
    return {
        "os.makedirs": {"_target_": "os.makedirs", "name": str(made), "exist_ok": True},
        "shutil.copyfile": {"_target_": "shutil.copyfile", "src": __file__, "dst": str(made)},
        "builtins.open(mode=w)": {"_target_": "builtins.open", "file": str(made), "mode": "w"},
        "pathlib.Path.write_text": {
            "_target_": "pathlib.Path.write_text",
            "_args_": [{"_target_": "pathlib.Path", "_args_": [str(made)]}, "import os"],
        },
        "nested in _args_": {
            "_target_": "fashion_lab.models.cnn.cnn",
            "_args_": [{"_target_": "os.makedirs", "name": str(made)}],
        },
        "partial in an option": {
            "_target_": "fashion_lab.models.cnn.cnn",
            "hidden": {"_target_": "os.makedirs", "_partial_": True, "name": str(made)},
        },
        "through a module attribute": {
            "_target_": "torch.optim.optimizer.torch.save",
            "obj": 1,
            "f": str(made),
        },
        "a resolver": {
            "_target_": "fashion_lab.models.cnn.cnn",
            "hidden": "${fashion_lab.claim:" + str(made) + "}",
        },
    }


def main() -> None:
    work = Path(tempfile.mkdtemp())
    write_dataset(work / "data")
    tiny = tiny_overrides(work / "data", work / "logs")
    good = untrained_checkpoint(compose_run(tiny, work))
    (work / "photos").mkdir()
    torch.save(torch.zeros(1), work / "photos" / "not_an_image.png")
    from PIL import Image

    Image.new("L", (28, 28)).save(work / "photos" / "item.png")
    print("| payload | command | exit | ran | what it printed last |")
    print("| --- | --- | --- | --- | --- |")
    for i, (name, node) in enumerate(payloads(work / "made").items()):
        run = work / f"run{i}"
        (run / "checkpoints").mkdir(parents=True)
        (run / ".hydra").mkdir()
        bad = copy.deepcopy(good)
        bad["fashion_lab_config"]["model"] = node
        resumed = copy.deepcopy(good)
        resumed["fashion_lab_config"]["callbacks"]["evil"] = node
        torch.save(bad, run / "checkpoints" / "best.ckpt")
        torch.save(resumed, run / "checkpoints" / "last.ckpt")
        (run / "config.yaml").write_text(yaml.safe_dump(bad["fashion_lab_config"]))
        (run / "results.json").write_text('{"status": "completed", "test_acc": 0.5}')
        commands = {
            "evaluate": ["fashion_lab.evaluate", f"ckpt_path={run}"],
            "predict": ["fashion_lab.predict", f"ckpt_path={run}", f"images={work / 'photos'}"],
            "inspect": ["fashion_lab.inspect", f"ckpt_path={run}", f"--out={work / 'inspect'}"],
            "resume (callbacks)": [
                "fashion_lab",
                f"ckpt_path={run}",
                *tiny,
                "trainer.max_epochs=3",
            ],
            "compare": ["fashion_lab.compare", str(run), f"--out={work / 'compare'}"],
        }
        for command, args in commands.items():
            done = subprocess.run(
                [sys.executable, "-m", *args], capture_output=True, text=True, cwd=REPO
            )
            lines = (done.stderr + done.stdout).strip().splitlines()
            said = next((line for line in reversed(lines) if "not computed" in line), lines[-1])
            ran = (work / "made").exists()
            said = said.replace(str(work), "$TMP").replace("|", "/")
            what = "YES" if ran else "nothing"
            print(f"| {name} | {command} | {done.returncode} | {what} | {said} |")
            if ran:
                (work / "made").unlink() if (work / "made").is_file() else (work / "made").rmdir()


if __name__ == "__main__":
    main()
