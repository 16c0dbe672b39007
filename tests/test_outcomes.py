"""The first step is checked, and a run's outcome is honest: what fails when the built objects
first meet is one sentence naming the override; a run that diverged or learned nothing is not
"completed", and compare and sweeps count it apart."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import run_cli, tiny_overrides

from fashion_lab.callbacks import FirstStep
from fashion_lab.compare import compare
from fashion_lab.module import CHANCE_MIN_STEPS, no_better_than_chance, taken_over


def _record(log_dir: Path) -> dict:
    [path] = log_dir.rglob("results.json")
    return json.loads(path.read_text())


def _one_sentence(done) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("overrides", "sentence"),
    [
        # the two examples
        (
            ["+model.num_classes=5"],
            # the sanity check's batch: the 128 validation images
            "The network returned outputs of shape [128, 5] for a batch of 128 images, where a "
            "Fashion-MNIST classifier returns [128, 10] (one score for each of the 10 classes); "
            "set model.num_classes=10.",
        ),
        (
            ["trainer.accumulate_grad_batches=0", "module.steps_per_call=1"],
            # the failing line reads both the epochs and the accumulation: both are named
            "in the trainer (ZeroDivisionError: division by zero); change "
            "trainer.max_epochs=2, trainer.accumulate_grad_batches=0, then run again.",
        ),
        # a Trainer value Lightning takes, then fails on when it counts the schedule's steps
        (["trainer.limit_train_batches=0.0001"], "change trainer.limit_train_batches=0.0001, then"),
        # a value the real schedule fails on at its first step (no stand-in optimizer)
        (["scheduler=cosine", "scheduler.T_max=0"], "change scheduler.T_max=0, then"),
        # a preset's value the error names: said with its value, though not typed
        (
            ["experiment=quick", "trainer.limit_train_batches=0.01"],
            "`limit_train_batches=0.5`); change trainer.limit_train_batches=0.01, then",
        ),
    ],
)
def test_what_fails_at_the_first_step_is_one_sentence(tiny_data, tmp_path, overrides, sentence):
    done = run_cli(*tiny_overrides(tiny_data, tmp_path), *overrides)
    last = _one_sentence(done)
    assert last.startswith("Error: ") and sentence in last, last
    assert _record(tmp_path)["status"] == "failed"
    assert not list(tmp_path.rglob("last.ckpt")), "stopped before any epoch was trained"


def test_the_watch_names_whose_code_failed_and_the_overrides_its_lines_use():
    watch = FirstStep({"/home/me/mypkg/nets.py"}, ["trainer.max_epochs=3", "optimizer.lr=2"])

    def failing(filename: str, line: str) -> Exception:
        code = compile("\n" * 0 + f"raise ValueError('bad')  # {line}", filename, "exec")
        try:
            exec(code)
        except ValueError as e:
            return e
        raise AssertionError

    error = failing("/x/torch/optim/adam.py", "lr step")
    assert watch.owner(error) == "optimizer"
    assert "change or drop optimizer.lr=2" in watch.explain(error)  # no config: the group's
    assert watch.owner(failing("/home/me/mypkg/nets.py", "forward")) == "model"
    assert watch.owner(failing("/x/torch/optim/lr_scheduler.py", "")) == "scheduler"
    assert watch.owner(failing("/x/pytorch_lightning/loops/fit_loop.py", "")) == "trainer"
    assert (
        watch.owner(failing("/x/pytorch_lightning/callbacks/early_stopping.py", "")) == "callbacks"
    )
    assert watch.watching
    watch.trained = watch.epoch_done = True
    assert not watch.watching


def test_a_learning_rate_that_explodes_the_loss_is_diverged_not_completed(tiny_data, tmp_path):
    done = run_cli(*tiny_overrides(tiny_data, tmp_path), "optimizer.lr=1e6")
    last = _one_sentence(done)
    assert last.startswith("Error: Training diverged: the loss ")
    assert "lower the learning rate (optimizer.lr=0.001)" in last
    record = _record(tmp_path)
    assert record["status"] == "diverged" and record["error_type"] == "DivergenceError"
    assert record.get("test_acc") is None, "a diverged model is not scored as if it were one"
    healthy = run_cli(*tiny_overrides(tiny_data, tmp_path / "healthy"))
    assert healthy.returncode == 0, healthy.stderr[-2000:]
    assert _record(tmp_path / "healthy")["status"] == "completed"


@pytest.mark.slow
def test_a_long_enough_run_that_learns_nothing_ends_at_chance(tiny_data, tmp_path):
    # learning rate 0: the untrained network, for 256 optimizer steps
    args = ["optimizer=sgd", "scheduler=none", "optimizer.lr=0", "data.batch_size=8"]
    done = run_cli(*tiny_overrides(tiny_data, tmp_path), *args, "trainer.max_epochs=4")
    last = _one_sentence(done)
    assert "After 256 optimizer steps the best validation accuracy is" in last
    assert "no better than guessing" in last and "optimizer.lr=0" in last
    record = _record(tmp_path)
    assert record["status"] == "at_chance" and record["val_acc_best"] is not None
    # the same network for fewer steps is merely short: it completes
    short = run_cli(*tiny_overrides(tiny_data, tmp_path / "short"), *args, "trainer.max_epochs=1")
    assert short.returncode == 0 and _record(tmp_path / "short")["status"] == "completed"


def test_the_chance_rule_on_both_sides():
    steps = CHANCE_MIN_STEPS
    # 5,000 validation images: guessing scores 10% +- 0.42%
    assert no_better_than_chance(0.10, 5000, 10, steps) is not None
    assert no_better_than_chance(0.112, 5000, 10, steps) is not None
    assert no_better_than_chance(0.12, 5000, 10, steps) is None
    assert no_better_than_chance(0.10, 5000, 10, steps - 1) is None, "a short run is not judged"
    assert no_better_than_chance(None, 5000, 10, steps) is None
    bound = 0.1 + 3 * math.sqrt(0.09 / 128)
    assert no_better_than_chance(bound - 0.001, 128, 10, steps) is not None
    assert no_better_than_chance(bound + 0.001, 128, 10, steps) is None


def test_a_schedule_that_takes_over_the_optimizers_momentum_says_so(tiny_data, tmp_path):
    done = run_cli(*tiny_overrides(tiny_data, tmp_path), "optimizer=sgd", "trainer.max_epochs=1")
    assert done.returncode == 0
    assert (
        "OneCycleLR sets the optimizer's momentum itself, in place of optimizer.momentum=0.9 "
        "(now 0.95); to keep it, set scheduler.cycle_momentum=false" in done.stderr
    )
    kept = run_cli(
        *tiny_overrides(tiny_data, tmp_path / "kept"),
        "optimizer=sgd",
        "scheduler.cycle_momentum=false",
        "trainer.max_epochs=1",
    )
    assert kept.returncode == 0 and "momentum itself" not in kept.stderr
    before = [{"lr": 0.1, "momentum": 0.9, "betas": (0.9, 0.99)}]
    after = [{"lr": 0.004, "momentum": 0.95, "betas": (0.95, 0.99)}]
    assert taken_over(before, after, ["lr"]) is None, "the rate is the schedule's to set"
    assert "momentum and betas" in taken_over(before, after, ["momentum", "betas"])


def test_compare_shows_unhealthy_runs_and_ranks_only_healthy_ones(tmp_path):
    def run(name: str, status: str, acc: float, seed: int) -> None:
        (tmp_path / name).mkdir()
        record = {"status": status, "model": name[:3], "seed": seed, "test_acc": acc}
        record |= {"overrides": [f"model={name[:3]}"], "error": f"{status} here"}
        (tmp_path / name / "results.json").write_text(json.dumps(record))

    run("cnn0", "completed", 0.90, 0)
    run("cnn1", "completed", 0.91, 1)
    run("big0", "diverged", 0.99, 0)
    run("big1", "at_chance", 0.99, 1)
    report = compare([tmp_path])
    rows = [line for line in report.splitlines() if line.startswith("| model=")]
    assert rows[0].startswith("| model=cnn ") and "90.50" in rows[0]
    assert rows[1].startswith("| model=big | 2 | 2 | - |"), "counted, not ranked"
    assert "Not ranked: 2 runs that learned nothing worth ranking" in report
    assert "(diverged: diverged here)" in report and "(at_chance: at_chance here)" in report
