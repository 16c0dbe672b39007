"""pareto.py: the runs no other beats on every objective, as the search and compare show them."""

from __future__ import annotations

import json

import pytest

from fashion_lab import compare, pareto
from fashion_lab.errors import UserError

MAX_ACC_MIN_SIZE = {"val_acc_best": "maximize", "parameters": "minimize"}


def test_the_front_keeps_exactly_the_runs_no_other_beats_on_both():
    runs = [
        {"output_dir": "a", "val_acc_best": 0.90, "parameters": 1000},
        {"output_dir": "b", "val_acc_best": 0.92, "parameters": 5000},
        {"output_dir": "c", "val_acc_best": 0.89, "parameters": 2000},  # a beats it on both
        {"output_dir": "d", "val_acc_best": 0.92, "parameters": 6000},  # b: as good, smaller
        {"output_dir": "e", "val_acc_best": None, "parameters": 10},  # no figure: left out
    ]
    best = pareto.front(runs, MAX_ACC_MIN_SIZE)
    assert [r["output_dir"] for r in best] == ["b", "a"]
    assert "| b | 0.92 | 5000 |" in pareto.table(best, MAX_ACC_MIN_SIZE)


def test_objectives_are_figures_of_the_record_with_a_direction():
    assert pareto.objectives_of("val_acc_best:max,train_time_s:min", "--pareto") == {
        "val_acc_best": "maximize",
        "train_time_s": "minimize",
    }
    with pytest.raises(UserError, match=r"the figures: val_acc_best.*e\.g\. --pareto="):
        pareto.objectives_of({"accuracy": "maximize"}, "--pareto")
    with pytest.raises(UserError, match="maximize or minimize"):
        pareto.objectives_of({"parameters": "smaller"}, "hydra.sweeper.objectives")


def test_compare_shows_the_front_of_the_completed_runs(tmp_path):
    figures = [(0.90, 1000), (0.92, 5000), (0.89, 2000)]
    for i, (acc, size) in enumerate(figures):
        run = tmp_path / f"run{i}"
        run.mkdir()
        record = {"status": "completed", "model": "cnn", "seed": i, "overrides": [f"seed={i}"]}
        record |= {"val_acc_best": acc, "test_acc": acc, "parameters": size}
        (run / "results.json").write_text(json.dumps(record))
    report = compare.compare([tmp_path], tmp_path / "out", pareto=MAX_ACC_MIN_SIZE)
    assert "Pareto front (2 of 3 completed runs)" in report
    said = (tmp_path / "out" / "pareto.md").read_text()
    assert "| run1 |" in said and "| run0 |" in said and "| run2 |" not in said
    assert (tmp_path / "out" / "pareto.png").stat().st_size > 5_000
