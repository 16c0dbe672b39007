"""plan.py: a run decided once, before anything is built; the objects are built from it."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import compose_run, tiny_overrides

from fashion_lab import data, plan
from fashion_lab.callbacks import RunRecorder
from fashion_lab.errors import UserError
from fashion_lab.train import assemble


def test_the_plan_reads_the_data_once_and_the_objects_take_its_picks(
    tiny_data, tmp_path, monkeypatch
):
    reads = []
    real = data.load_split
    monkeypatch.setattr(data, "load_split", lambda *a, **k: reads.append(a[1]) or real(*a, **k))
    cfg = compose_run([*tiny_overrides(tiny_data, tmp_path), "module.steps_per_call=2"], tmp_path)
    decided = plan.resolve(cfg, plan.Start(None))
    parts = assemble(decided, RunRecorder())
    parts.datamodule.setup()
    assert sorted(reads) == ["test", "train"], "each split read once, by the plan"
    assert parts.datamodule.steps_per_call == parts.module.steps_per_call == 2
    assert decided.config["module"]["steps_per_call"] == 2
    assert decided.config["trainer"]["precision"] == decided.settings.trainer["precision"]
    assert str(parts.trainer.precision) == decided.settings.trainer["precision"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decided.cfg = None


def test_a_bad_batch_size_is_said_before_anything_is_timed(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "settings", lambda *a: pytest.fail("timed before the data's check"))
    cfg = compose_run([*tiny_overrides(tiny_data, tmp_path), "data.batch_size=100000"], tmp_path)
    with pytest.raises(UserError, match="larger than the training split"):
        plan.resolve(cfg, plan.Start(None))


def test_testing_needs_a_checkpoint(tiny_data, tmp_path):
    cfg = compose_run([*tiny_overrides(tiny_data, tmp_path), "train=false"], tmp_path)
    with pytest.raises(UserError, match="name its checkpoint with ckpt_path"):
        plan.checked_config(cfg, plan.Start(None))
