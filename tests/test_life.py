"""life.py: a run's life in one object, whatever its pipeline does."""

from __future__ import annotations

import json
import os

import pytest
from conftest import compose_run, tiny_overrides
from test_runlock import _held_by_another

from fashion_lab.errors import RunInterrupted
from fashion_lab.life import Job, RunRecord
from fashion_lab.module import DivergenceError


@pytest.fixture
def cfg(tiny_data, tmp_path):
    return compose_run(tiny_overrides(tiny_data, tmp_path), tmp_path)


def record(tmp_path) -> dict:
    return json.loads((tmp_path / "run" / "results.json").read_text())


def test_a_completed_pipeline_is_recorded_and_its_directory_held_while_it_runs(cfg, tmp_path):
    def pipeline(run: RunRecord) -> None:
        with pytest.raises(BlockingIOError):  # another process cannot take the directory
            _held_by_another(tmp_path / "run")
        run.results["val_acc_best"] = 0.5

    returned = RunRecord(cfg).live(pipeline)
    assert returned["status"] == record(tmp_path)["status"] == "completed"
    assert record(tmp_path)["val_acc_best"] == 0.5 and record(tmp_path)["wall_time_s"] >= 0
    os.close(_held_by_another(tmp_path / "run"))  # let go at the end


@pytest.mark.parametrize(
    ("error", "status"),
    [(ValueError("a bug"), "failed"), (DivergenceError("loss nan"), "diverged")],
)
def test_an_error_is_the_records_status_and_goes_on_to_the_boundary(cfg, tmp_path, error, status):
    def pipeline(run: RunRecord) -> None:
        raise error

    with pytest.raises(type(error)):
        RunRecord(cfg).live(pipeline)
    assert record(tmp_path)["status"] == status and record(tmp_path)["error"] == str(error)


def test_ctrl_c_is_interrupted_with_how_to_go_on(cfg, tmp_path):
    def pipeline(run: RunRecord) -> None:
        raise KeyboardInterrupt

    with pytest.raises(RunInterrupted, match="Interrupted before anything could be saved"):
        RunRecord(cfg).live(pipeline)
    assert record(tmp_path)["status"] == "interrupted"


def test_a_sweep_job_completed_earlier_is_skipped_with_its_figure(cfg, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text('{"status": "completed", "val_acc_best": 0.8}')
    job = RunRecord(cfg)
    job.job = Job(sweeping=True, index=0, sweep_dir=str(tmp_path))
    assert job.live(lambda run: pytest.fail("ran again")) is None
    assert job.objective == 0.8


def test_a_sweep_jobs_error_is_said_and_the_sweep_goes_on(cfg, tmp_path, caplog):
    job = RunRecord(cfg)
    job.job = Job(sweeping=True, index=3, sweep_dir=str(tmp_path))

    def pipeline(run: RunRecord) -> None:
        raise ValueError("a bug")

    assert job.live(pipeline) is None and job.objective is None
    assert record(tmp_path)["status"] == "failed"
    assert "Job failed with ValueError: a bug" in caplog.text
