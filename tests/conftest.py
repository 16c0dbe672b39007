"""Shared fixtures: tiny synthetic Fashion-MNIST-shaped IDX files, written by the tests."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fashion_lab import build, plan
from fashion_lab.config import compose_config, to_dict

REPO = Path(__file__).resolve().parent.parent
# the speed measurements of tests (fashion_lab.speed) never reach the user's cache
os.environ.setdefault("FASHION_LAB_SPEED_CACHE", str(Path(tempfile.mkdtemp()) / "speed.json"))
REAL_DATA = Path(os.environ.get("FASHION_LAB_REAL_DATA", "/usr/share/datasets/fashion-mnist"))


def idx_bytes(array: np.ndarray) -> bytes:
    """The uncompressed IDX encoding of a uint8 array."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> str:
    """Write a gzipped IDX file; return the MD5 of its uncompressed bytes."""
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw))
    return hashlib.md5(raw).hexdigest()


def synthetic_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images: class k lights a 6x6 block at a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        r, c = 2 + (k // 5) * 12, 1 + (k % 5) * 5
        images[i, r : r + 6, c : c + 6] = 220
    return images, labels


def write_dataset(directory: Path, n_train: int = 640, n_test: int = 200) -> dict[str, str]:
    """Write the four files; return {file name: MD5 of its content}."""
    directory.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_split(n, seed)
        checksums[f"{prefix}-images-idx3-ubyte.gz"] = write_idx(
            directory / f"{prefix}-images-idx3-ubyte.gz", images
        )
        checksums[f"{prefix}-labels-idx1-ubyte.gz"] = write_idx(
            directory / f"{prefix}-labels-idx1-ubyte.gz", labels
        )
    return checksums


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    directory = tmp_path / "fashion-mnist"
    write_dataset(directory)
    return directory


def tiny_overrides(data_dir: Path, log_dir: Path) -> list[str]:
    """Overrides that train on the synthetic files in seconds."""
    return [
        f"data.root={data_dir}",
        "data.system_dir=null",
        "data.download=false",
        "data.verify_checksums=false",
        "data.val_size=128",
        "data.batch_size=64",
        "data.eval_batch_size=256",
        f"paths.log_dir={log_dir}",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.log_every_n_steps=1",
        "module.num_prediction_samples=8",
        # pinned, not timed: a test's figures must not depend on which precision won today, nor
        # on how many steps a call the machine's load made worth it
        "trainer.precision=32-true",
        "module.channels_last=true",
        "module.steps_per_call=4",
    ]


def run_cli(
    *args: str,
    timeout: float = 300,
    module: str = "fashion_lab",
    cwd: Path = REPO,
    warnings: str = "ignore",
) -> subprocess.CompletedProcess:
    """Run `python -m fashion_lab ARGS` (or another of its commands) as a user would, from
    `cwd` (the repository by default), with Python's warnings set by `warnings`
    (PYTHONWARNINGS: ignored by default)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": warnings},
    )


requires_real_data = pytest.mark.skipif(
    not all(
        (REAL_DATA / f"{p}-{k}.gz").is_file()
        for p in ("train", "t10k")
        for k in ("images-idx3-ubyte", "labels-idx1-ubyte")
    ),
    reason=f"the real dataset is not in {REAL_DATA} (apt-get install dataset-fashion-mnist)",
)


def compose_run(overrides: list[str], tmp_path: Path):
    """The config a run with these overrides gets, with its output directory in tmp_path."""
    return compose_config(overrides, tmp_path / "run")


def untrained_checkpoint(cfg) -> dict:
    """What a fashion_lab checkpoint of `cfg`'s untrained network holds, without training."""
    net = build.network(cfg.model)
    return {
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        "fashion_lab_config": to_dict(cfg),
        "FashionMNISTDataModule": {"mean": 0.3, "std": 0.35},
        "epoch": 0,
        "global_step": 8,
    }


def build_run(cfg, callbacks=()):
    """The module, Trainer and DataModule a run of `cfg` trains with (as train.py builds them)."""
    run = plan.settings(cfg)
    module = build.module(cfg, build.network(cfg.model), run, to_dict(cfg))
    return module, build.trainer(cfg, run, callbacks), build.datamodule(cfg, run.steps_per_call)


@pytest.fixture
def slow_enough_data(tmp_path) -> Path:
    """Enough synthetic images that an epoch takes about a second, so a signal lands mid-run."""
    directory = tmp_path / "data"
    write_dataset(directory, n_train=4000, n_test=500)
    return directory


def signal_after_a_checkpoint(
    args: list[str],
    checkpoints: str,
    root: Path,
    signum: int,
    *,
    group: int = 0,
    to: Callable[[subprocess.Popen], int] | None = None,
) -> tuple[int, str]:
    """Run `python -m fashion_lab ARGS`, send it `signum` soon after a last checkpoint matching
    `root/checkpoints` (a glob) appears, and wait for it: its exit code and stderr. With
    `group`, the command runs in a process group of its own, which gets the signal (as a
    terminal's Ctrl-C reaches a command's every process) once `group` checkpoints match; with
    `to`, the signal goes to the process `to(process)` names instead (one of its jobs, say)."""
    stderr_path = root / "stderr.txt"
    root.mkdir(parents=True, exist_ok=True)
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "fashion_lab", *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=bool(group),
            # a command started in the background of a script ignores SIGINT; a terminal's not
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 120
        while len(list(root.glob(checkpoints))) < max(group, 1):
            assert process.poll() is None, "the run ended before the signal"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        assert process.poll() is None, "the run ended before the signal"
        if to is not None:
            os.kill(to(process), signum)
        elif group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        process.wait(timeout=180)
    return process.returncode, stderr_path.read_text()


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of Debian's `postgresql` package on loopback, started for the tests
    and stopped after them. Skipped where no server is installed."""
    from postgres import PostgresServer

    if PostgresServer.bin_dir() is None:
        pytest.skip("no PostgreSQL server here (apt-get install postgresql)")
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A new, empty database on the test server, as a storage URL."""
    return postgres_server.new_database()
