"""Two and three sweep processes started together on one study, on SQLite and on PostgreSQL:
each process's exit code, the study's trials per state, and the job folders.

    python experiments/search/shared_study.py     # needs Debian's postgresql package

Each search: 6 trials (n_trials=6) of 1 epoch on 2,000 synthetic training images, `model.width`
and `optimizer.lr` swept, every process with hydra.sweeper.n_jobs=1.
"""

import collections
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from conftest import REPO, tiny_overrides, write_dataset
from postgres import PostgresServer

optuna.logging.set_verbosity(optuna.logging.WARNING)


def search(storage: str, processes: int, root: Path) -> None:
    args = [
        "-m",
        "hparams_search=optuna",
        "model.width=choice(4,8,16)",
        "optimizer.lr=choice(0.001,0.002,0.004,0.008)",
        *tiny_overrides(root.parent / "data", root),
        "trainer.max_epochs=1",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={root / 'search'}",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.pruner=null",
    ]
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "fashion_lab", *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(processes)
    ]
    codes = [p.wait(timeout=900) for p in started]
    study = optuna.load_study(study_name="fashion_lab", storage=storage)
    states = collections.Counter(
        t.state.name + (" (duplicate, not run)" if "duplicate_of" in t.user_attrs else "")
        for t in study.trials
    )
    jobs = sorted(p.name for p in (root / "search").iterdir() if p.is_dir())
    kind = storage.split(":", 1)[0]
    print(f"{processes} processes on {kind}: exit codes {codes}; trials {dict(states)}")
    print("  job folders: " + ", ".join(jobs))


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    write_dataset(tmp / "data", n_train=2000, n_test=500)
    with PostgresServer() as server:
        for processes in (2, 3):
            sqlite = tmp / f"sqlite{processes}"
            search(f"sqlite:///{sqlite / 'study.db'}", processes, sqlite)
            search(server.new_database(), processes, tmp / f"postgresql{processes}")
