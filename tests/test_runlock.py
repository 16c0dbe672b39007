"""One run, one directory: a directory a live run holds is refused, and nothing in it is touched."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, compose_run, run_cli, tiny_overrides

from fashion_lab import runlock
from fashion_lab.errors import UserError
from fashion_lab.train import train


def _held_by_another(directory, pid: str = "12345") -> int:
    """What another process's hold looks like: its own open file, flocked."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / runlock.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"{pid}\n".encode())
    return fd


def test_a_directory_a_live_run_holds_is_refused_and_left_as_it_was(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    fd = _held_by_another(run_dir)
    (run_dir / "results.json").write_text('{"status": "running"}')
    cfg = compose_run([*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=1"], tmp_path)
    with pytest.raises(
        UserError, match=r"is in use by a run that is still going \(process 12345\)"
    ):
        train(cfg)
    assert json.loads((run_dir / "results.json").read_text()) == {"status": "running"}
    assert not (run_dir / "config.yaml").exists()
    # the other run ends (or crashes: the system closes its files): the directory is free
    os.close(fd)
    (run_dir / "results.json").unlink()
    assert train(cfg)["status"] == "completed"
    os.close(_held_by_another(run_dir))  # and train let go of it when it ended


def test_a_lock_is_held_until_released_and_a_second_take_in_this_process_leaves_it(tmp_path):
    lock = runlock.DirectoryLock(tmp_path / "a").take()
    assert runlock.holder(tmp_path / "a") == os.getpid()
    again = runlock.DirectoryLock(tmp_path / "a").take()  # this process: the hold stays the first's
    assert again.fd is None and lock.fd is not None
    with pytest.raises(BlockingIOError):
        _held_by_another(tmp_path / "a")
    again.release()  # holds nothing: the first's hold stays
    with pytest.raises(BlockingIOError):
        _held_by_another(tmp_path / "a")
    lock.release()
    os.close(_held_by_another(tmp_path / "a"))


def test_a_claimed_directory_is_this_process_s_and_another_name_goes_to_the_next(tmp_path):
    from fashion_lab.config import claim

    first = claim(str(tmp_path / "run"))
    assert first == str(tmp_path / "run") and claim(str(tmp_path / "run")) == first
    (tmp_path / "other").mkdir()  # made by another process (its lock file names it)
    (tmp_path / "other" / runlock.LOCK).write_text("12345\n")
    assert claim(str(tmp_path / "other")) == str(tmp_path / "other_2")


@pytest.mark.slow
def test_a_second_command_on_a_live_runs_directory_is_one_sentence(tiny_data, tmp_path):
    run_dir = tmp_path / "shared"
    common = [
        *tiny_overrides(tiny_data, tmp_path),
        "trainer.max_epochs=100000",  # still going when the second starts; then Ctrl-C
        f"hydra.run.dir={run_dir}",
    ]
    first = subprocess.Popen(
        [sys.executable, "-m", "fashion_lab", *common, "seed=0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (run_dir / "config.yaml").is_file():  # written by the task, after .hydra/
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.2)
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
    second = run_cli(*common, "seed=1")
    assert first.poll() is None, first.communicate()[1][-3000:]
    assert second.returncode == 2
    [line] = second.stderr.strip().splitlines()
    assert line.startswith(f"Error: {run_dir} is in use by a run that is still going (process ")
    assert f"{first.pid}" in line
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=120) == 130, first.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "interrupted" and results["seed"] == 0
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == overrides  # not the second's
