"""A full disk: one sentence naming the directory and what to do, checkpoints whole, and no
finished record lost (an earlier results.json stays until a new one is whole)."""

from __future__ import annotations

import errno
import json
import logging
import subprocess
from pathlib import Path

import pytest
from conftest import compose_run, run_cli, tiny_overrides

from fashion_lab import life
from fashion_lab import train as train_module
from fashion_lab.checkpoints import AtomicCheckpointIO, load_checkpoint
from fashion_lab.errors import UserError, no_space
from fashion_lab.results import write_results

FULL = OSError(errno.ENOSPC, "No space left on device")


def test_no_space_is_found_under_what_wraps_it():
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as e:
            raise RuntimeError("the logger failed") from e
    except RuntimeError as wrapped:
        assert no_space(wrapped).errno == errno.EDQUOT
    assert no_space(OSError(errno.EACCES, "Permission denied")) is None


def test_a_record_that_cannot_be_written_leaves_the_earlier_one_whole(tmp_path, monkeypatch):
    write_results(tmp_path, {"status": "interrupted"})

    def full_disk(self, text):
        self.write_bytes(text[:10].encode())  # part of it, then the disk is full
        raise FULL

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError):
        write_results(tmp_path, {"status": "completed"})
    monkeypatch.undo()
    assert json.loads((tmp_path / "results.json").read_text()) == {"status": "interrupted"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"], "no half file left"


def test_a_full_disk_mid_run_then_at_its_record(tiny_data, tmp_path, monkeypatch, caplog):
    saves = []
    save = AtomicCheckpointIO.save_checkpoint

    def full_at_epoch_1(self, checkpoint, path, storage_options=None):
        saves.append(path)
        if checkpoint["epoch"] >= 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", full_at_epoch_1)
    overrides = tiny_overrides(tiny_data, tmp_path)  # 2 epochs
    run_dir = tmp_path / "run"
    with pytest.raises(UserError) as stopped:
        train_module.train(compose_run(overrides, tmp_path))
    assert str(stopped.value) == (
        f"No space left on the disk that holds {run_dir} (No space left on device); free space "
        "there (or set paths.log_dir to a disk with room), then the finished epochs are saved, "
        f"continue with `python -m fashion_lab ckpt_path={run_dir}`."
    )
    assert load_checkpoint(run_dir / "checkpoints/last.ckpt")["epoch"] == 0
    record = json.loads((run_dir / "results.json").read_text())
    assert record["status"] == "interrupted", "a sweep run again continues it"
    assert record["error"].startswith("No space left on device: ")
    monkeypatch.undo()

    # the resume trains to the end, and then the disk is full for its record
    def full_disk(*args, **kwargs):
        raise FULL

    monkeypatch.setattr(life, "write_results", full_disk)
    resume = compose_run([*overrides, f"ckpt_path={run_dir}"], tmp_path)
    with caplog.at_level(logging.ERROR), pytest.raises(UserError) as unwritten:
        train_module.train(resume)
    monkeypatch.undo()
    assert str(unwritten.value).startswith(
        f"Cannot write {run_dir / 'results.json'} (No space left on device); the run finished "
        "and its record is the line above"
    )
    assert json.loads((run_dir / "results.json").read_text()) == record, "the earlier one kept"
    [line] = [r.message for r in caplog.records if "could not hold" in r.message]
    kept = json.loads(line.split("could not hold: ", 1)[1])
    assert kept["status"] == "completed" and kept["test_acc"] is not None


def _tmpfs(directory: Path, size: str) -> bool:
    directory.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)]
    return subprocess.run(mount, capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_run_on_a_disk_that_fills_ends_in_one_sentence(tiny_data, tmp_path):
    disk = tmp_path / "small_disk"
    if not _tmpfs(disk, "3m"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        done = run_cli(*tiny_overrides(tiny_data, disk), "trainer.max_epochs=3")
        assert done.returncode == 2, done.stderr[-3000:]
        assert "Traceback" not in done.stderr and "Logging error" not in done.stderr
        last = done.stderr.strip().splitlines()[-1]
        [run_dir] = disk.glob("runs/*")
        assert last.startswith(
            f"Error: No space left on the disk that holds {run_dir} (No space left on device); "
            "free space there (or set paths.log_dir to a disk with room), then "
        ), last
        assert not list(disk.rglob("*.tmp")), "no half-written file is left"
        for checkpoint in run_dir.glob("checkpoints/*.ckpt"):
            load_checkpoint(checkpoint)  # whole
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    "moment",
    [
        ".hydra/config.yaml",
        "tensorboard/events*",
        "checkpoints/best.ckpt",
        "test_confusion_matrix.png",
    ],
)
def test_a_disk_that_fills_at_any_moment_ends_in_the_sentence_and_the_record(
    tiny_data, tmp_path, moment
):
    """Another process fills the disk at `moment` (when that file appears): the run ends in the
    sentence with nothing after it (no writer thread's traceback), its record says how it
    stopped, and the resume that follows records that."""
    import os
    import sys
    import time

    disk = tmp_path / "disk"
    if not _tmpfs(disk, "40m"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        args = [*tiny_overrides(tiny_data, disk), "trainer.max_epochs=3"]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        command = [sys.executable, "-m", "fashion_lab", *args]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 120
        while not list(disk.glob(f"runs/*/{moment}")) and time.monotonic() < deadline:
            time.sleep(0.01)
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as f, pytest.raises(OSError):
            while True:
                f.write(bytes(2**20))

        stderr = process.communicate(timeout=120)[1]
        if process.returncode == 0:
            pytest.skip(f"the run ended before the disk filled at {moment}")
        assert process.returncode == 2, stderr[-3000:]
        for noise in ("Traceback", "Exception in thread", "Logging error"):
            assert noise not in stderr, stderr[-3000:]
        last = stderr.strip().splitlines()[-1]
        [run_dir] = disk.glob("runs/*")
        assert last.startswith(f"Error: No space left on the disk that holds {run_dir} ("), last
        record = json.loads((run_dir / "results.json").read_text())
        assert record["status"] == "interrupted" and "No space left" in record["error"]
        filler.unlink()
        again = run_cli(*args, f"ckpt_path={run_dir}")
        if not (run_dir / "checkpoints" / "last.ckpt").exists():
            assert again.returncode == 2 and "saved no checkpoint" in again.stderr
            return
        assert again.returncode == 0, again.stderr[-3000:]
        resumed = json.loads((run_dir / "results.json").read_text())
        assert resumed["status"] == "completed"
        assert resumed["resumes"][-1]["after"].startswith("interrupted: No space left on device")
    finally:
        subprocess.run(["umount", str(disk)], check=False)
