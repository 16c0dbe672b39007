"""The wall clock from the process's start: time-to-accuracy figures and the time budget."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from conftest import run_cli, tiny_overrides

from fashion_lab.budget import TimeBudget, process_start
from fashion_lab.callbacks import time_to_accuracy
from fashion_lab.module import LitClassifier
from fashion_lab.results import check_record


def test_the_process_started_before_the_test_and_within_its_session():
    started = process_start()
    assert started <= time.time()
    assert time.time() - started < 24 * 3600


def test_time_to_accuracy_keeps_each_marks_first_epoch_and_stops_at_a_resume():
    history = [
        {"epoch": 0, "elapsed_s": 10.0, "val/acc": 0.905},
        {"epoch": 1, "elapsed_s": 20.0, "val/acc": None},  # not validated
        {"epoch": 2, "elapsed_s": 30.0, "val/acc": 0.925},
        {"epoch": 3, "elapsed_s": 40.0, "val/acc": 0.915},
        {"epoch": 4, "elapsed_s": 8.0, "val/acc": 0.95},  # a resumed process: its clock restarted
    ]
    assert time_to_accuracy(history) == {"0.90": 10.0, "0.91": 30.0, "0.92": 30.0}
    assert time_to_accuracy([{"epoch": 0, "val/acc": 0.99}]) == {}  # a record from before


class _Share:
    """A budget whose share of training time spent is set by the test."""

    def __init__(self, share: float) -> None:
        self.value = share

    def share(self) -> float:
        return self.value


def _one_cycle(budget, total_steps: int = 100):
    net = torch.nn.Linear(2, 2)
    module = LitClassifier(
        net,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
        scheduler=lambda optimizer: torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=0.1, total_steps=total_steps
        ),
        budget=budget,
    )
    optimizer = module.optimizer_factory(module.parameters())
    scheduler = module.scheduler_factory(optimizer)
    optimizer.step()  # as in training: the schedule steps after the optimizer
    module._schedule_length = total_steps
    return module, scheduler


def test_the_schedule_follows_the_time_spent_when_it_is_ahead_of_the_steps():
    budget = _Share(0.5)
    module, scheduler = _one_cycle(budget)
    module.lr_scheduler_step(scheduler, None)
    assert scheduler.last_epoch == 50  # half the time spent: half the schedule (of 0..99)
    budget.value = 0.0
    module.lr_scheduler_step(scheduler, None)
    assert scheduler.last_epoch == 51  # time behind the steps: one step a step, never back
    budget.value = 1.0
    for _ in range(3):
        module.lr_scheduler_step(scheduler, None)
    assert scheduler.last_epoch == 99  # the final rate, held: no step past it
    assert scheduler.get_last_lr()[0] < 1e-5


def test_without_a_budget_the_schedule_steps_once_a_step():
    module, scheduler = _one_cycle(None)
    module.lr_scheduler_step(scheduler, None)
    assert scheduler.last_epoch == 1


def test_the_budget_keeps_room_for_the_test_after_training():
    budget = TimeBudget(100, test_images=10_000, eval_batch=1000, started=1000.0)
    budget.validation_s, budget.test_image_s = 2.0, 0.001
    assert budget.deadline() == pytest.approx(1100 - budget.test_reserve())
    assert budget.test_reserve() > 2.0 + 10  # the stopped epoch's validation, then the test
    net = LitClassifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), None)
    net.train()
    assert 0 < budget._time_test_image(net) < 0.01 and net.training, "measured, mode kept"


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "abc"])
def test_a_budget_that_is_not_a_positive_number_is_one_sentence(value, tiny_data, tmp_path):
    done = run_cli(*tiny_overrides(tiny_data, tmp_path / "out"), f"budget_s={value}")
    assert done.returncode != 0
    said = [line for line in done.stderr.splitlines() if "budget_s" in line]
    assert len(said) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]


def _record(log_dir: Path) -> dict:
    [path] = list(log_dir.rglob("results.json"))
    return json.loads(path.read_text())


def test_fast_cpu_stops_training_in_its_budget_and_is_tested(slow_enough_data, tmp_path):
    """The fast_cpu preset, tiny: the budget, not the epochs, ends its training."""
    log_dir = tmp_path / "out"
    overrides = [
        "experiment=fast_cpu",
        *tiny_overrides(slow_enough_data, log_dir),
        "trainer.max_epochs=1000",
    ]
    started = time.time()
    done = run_cli(*overrides, "budget_s=30")
    wall = time.time() - started
    assert done.returncode == 0, done.stderr[-3000:]
    record = _record(log_dir)
    assert check_record(record) is None
    assert record["status"] == "completed" and record["budget_ran_out"] is True
    assert record["model"] == "plain" and record["budget_s"] == 30
    assert 2 < record["epochs"] < 1000 and record["test_acc"] is not None
    assert wall <= 30 + 2, f"the run took {wall:.1f} s of its 30"  # the process's exit beyond
    assert record["elapsed_s"] <= 30
    walls = [h["elapsed_s"] for h in record["history"]]
    assert walls == sorted(walls) and walls[-1] <= record["elapsed_s"]


def test_a_budget_spent_before_training_is_one_sentence_naming_a_budget_that_fits(
    tiny_data, tmp_path
):
    done = run_cli(*tiny_overrides(tiny_data, tmp_path / "out"), "budget_s=1")
    assert done.returncode != 0
    assert "budget_s=1 is spent before training starts" in done.stderr
    assert "Traceback" not in done.stderr


def _fake_run(directory: Path, model: str, seed: int, test_acc: float, to_93: float | None):
    history = [
        {"epoch": 0, "elapsed_s": 50.0, "val/acc": 0.91},
        {"epoch": 1, "elapsed_s": to_93 or 100.0, "val/acc": 0.935 if to_93 else 0.925},
    ]
    record = {
        "status": "completed",
        "model": model,
        "seed": seed,
        "overrides": [f"model={model}", f"seed={seed}"],
        "test_acc": test_acc,
        "history": history,
        "time_to_val_acc_s": time_to_accuracy(history),
    }
    assert check_record(record) is None
    run_dir = directory / f"{model}_{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps(record))


def test_compare_shows_and_ranks_the_time_to_a_validation_accuracy(tmp_path):
    from fashion_lab.compare import main

    for seed in range(3):
        _fake_run(tmp_path / "runs", "slow_and_best", seed, 0.94 + seed / 1000, 200.0 + seed)
        _fake_run(tmp_path / "runs", "fast", seed, 0.93 + seed / 1000, 100.0 + seed)
        _fake_run(tmp_path / "runs", "never", seed, 0.92, None if seed else 150.0)
    out = tmp_path / "report"
    out.mkdir()
    main([str(tmp_path / "runs"), "--out", str(out), "--rank", "time"])
    table = (out / "leaderboard.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| model=")]
    assert [row.split(" | ")[0] for row in rows] == [
        "| model=fast",
        "| model=slow_and_best",
        "| model=never",
    ]
    assert "93%: 101 ± 1 s" in rows[0] and "(1 of 3 got there)" in rows[2]
    # the interval is still against the best test accuracy, whatever the order
    assert "best" in rows[1].split(" | ")[4] and rows[0].split(" | ")[4].startswith("-1.00")
    assert (out / "val_acc_vs_time.png").stat().st_size > 0
    main([str(tmp_path / "runs"), "--out", str(out), "--to", "0.91"])
    rows = [line for line in (out / "leaderboard.md").read_text().splitlines() if "| model" in line]
    assert rows[0].startswith("| model=slow_and_best") and "91%: 50 ± 0 s" in rows[0]


def test_the_time_to_accuracy_benchmark_runs_both_under_one_budget(
    slow_enough_data, tmp_path, capsys
):
    from fashion_lab import benchmark

    if not benchmark.KERAS_PEER.is_file():
        pytest.skip("../shared/peers/keras_seed_cnn.py is not beside this checkout")
    peer_epochs = [
        {"elapsed_s": 10.0, "test_acc": 0.85},
        {"elapsed_s": 20.0, "test_acc": 0.905},
        {"elapsed_s": 31.0, "test_acc": 0.95},  # past the budget: not counted
    ]
    fake = tmp_path / "python"  # answers the import check and the run alike
    fake.write_text(f"#!/bin/sh\necho '{json.dumps({'budget_epochs': peer_epochs})}'\n")
    fake.chmod(0o755)
    overrides = [
        o
        for o in tiny_overrides(slow_enough_data, tmp_path / "unused")
        if not o.startswith("paths.log_dir")
    ]
    argv = ["--budget", "30", "--keras-python", str(fake), *overrides, "trainer.max_epochs=1000"]
    benchmark.main(argv)
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ours, peer = report["fashion_lab"], report["keras"]
    assert ours["wall_s"] <= 32 and ours["test_acc"] is not None and ours["epochs"] > 1
    assert peer["test_acc"] == 0.905 and peer["epochs"] == 2
    assert peer["time_to_test_acc_s"] == {"0.90": 20.0}


def test_compare_gives_intervals_against_a_named_group(tmp_path, capsys):
    from fashion_lab.compare import main

    for seed in range(3):
        _fake_run(tmp_path / "runs", "control", seed, 0.93 + seed / 1000, None)
        _fake_run(tmp_path / "runs", "dilated", seed, 0.94 + seed / 1000, None)
    out = tmp_path / "report"
    out.mkdir()
    main([str(tmp_path / "runs"), "--out", str(out), "--against", "model=control"])
    table = (out / "leaderboard.md").read_text()
    assert "vs model=control, points (95% CI)" in table
    [dilated] = [line for line in table.splitlines() if line.startswith("| model=dilated")]
    assert "+1.00 [+1.00, +1.00] paired by seed" in dilated
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "runs"), "--out", str(out), "--against", "model="])
    assert exit_info.value.code == 2
    assert "--against model= names 2 groups" in capsys.readouterr().err


def test_a_budgeted_run_stopped_midway_is_not_resumed_with_or_without_its_budget(
    slow_enough_data, tmp_path
):
    import signal

    from conftest import signal_after_a_checkpoint

    run_dir = tmp_path / "run"
    args = [
        *tiny_overrides(slow_enough_data, tmp_path / "out"),
        "trainer.max_epochs=1000",
        "budget_s=120",
        f"hydra.run.dir={run_dir}",
    ]
    code, _ = signal_after_a_checkpoint(args, "checkpoints/last.ckpt", run_dir, signal.SIGINT)
    assert code != 0 and _record(run_dir)["status"] == "interrupted"
    base = [*tiny_overrides(slow_enough_data, tmp_path / "out"), f"ckpt_path={run_dir}"]
    for extra, said in (
        ([], "cannot continue from a checkpoint"),
        (["budget_s=null"], "budget_s=null cannot change a run that resumes"),
    ):
        done = run_cli(*base, *extra)
        assert done.returncode == 2, done.stderr[-2000:]
        assert said in done.stderr and "Traceback" not in done.stderr
    assert (run_dir / "checkpoints" / "last.ckpt").is_file(), "its checkpoint is kept"
