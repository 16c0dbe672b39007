"""Sweeps: presets, failures recorded without stopping, re-runs that skip finished jobs, compare."""

from __future__ import annotations

import csv
import json
import shutil
import time
import warnings
from pathlib import Path

import pytest
from conftest import run_cli, tiny_overrides

from fashion_lab.compare import (
    add_differences,
    compare,
    difference,
    group_runs,
    leaderboard,
    load_runs,
    plot_val_curves,
)
from fashion_lab.errors import UserError

# each variant costs ~10 s of the default suite's 10 minutes; CI runs them with the slow tests
SUBMITIT_LOCAL = pytest.param("submitit_local", marks=pytest.mark.slow)


def _jobs(sweep_dir: Path) -> dict[str, dict]:
    return {
        json.loads(p.read_text())["model"]: json.loads(p.read_text())
        for p in sweep_dir.glob("*/results.json")
    }


@pytest.mark.slow
def test_failing_job_is_recorded_and_a_rerun_skips_finished_jobs(tiny_data, tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = [
        "-m",
        "model=cnn,dilated_v2",
        "++model.dilations=[1,2]",
        *tiny_overrides(tiny_data, tmp_path),
        "module.channels_last=false",
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    first = run_cli(*args)
    assert first.returncode == 1, "a sweep with a failed job exits non-zero"
    jobs = _jobs(sweep_dir)
    assert jobs["dilated_v2"]["status"] == "completed"
    assert jobs["cnn"]["status"] == "failed"
    assert "unexpected keyword argument 'dilations'" in jobs["cnn"]["error"]
    assert "1 completed, 1 failed, 0 skipped" in first.stderr
    assert "failed: " in first.stderr and "unexpected keyword argument 'dilations'" in first.stderr

    second = run_cli(*args)
    assert second.returncode == 1
    assert "0 completed, 1 failed, 1 skipped (completed earlier)." in second.stderr
    assert _jobs(sweep_dir)["dilated_v2"] == jobs["dilated_v2"], "finished results untouched"

    table = compare([sweep_dir])
    assert "model=dilated_v2" in table and "model=cnn" in table
    for name in (
        "leaderboard.md",
        "leaderboard.csv",
        "val_acc_per_epoch.png",
        "test_acc_vs_parameters.png",
    ):
        assert (sweep_dir / name).is_file()


def _fake_run(root: Path, name: str, model: str, seed: int, test_acc: float | None, **extra):
    run = root / name
    run.mkdir(parents=True)
    results = {
        "status": "completed",
        "model": model,
        "seed": seed,
        "test_acc": test_acc,
        "val_acc_best": None if test_acc is None else test_acc + 0.01,
        "parameters": 1000,
        "train_time_s": 10.0,
        "train_images_per_s": 500.0,
        "test_split_images": 10_000,
        "overrides": [f"model={model}", f"seed={seed}"],
        "history": [{"epoch": 0, "val/acc": 0.5}, {"epoch": 1, "val/acc": test_acc}],
    }
    results.update(extra)
    (run / "results.json").write_text(json.dumps(results))


def test_leaderboard_groups_over_seeds_with_mean_and_std(tmp_path):
    for seed, acc in enumerate((0.90, 0.92)):
        _fake_run(tmp_path, f"a{seed}", "cnn", seed, acc)
    for seed, acc in enumerate((0.94, 0.96)):
        _fake_run(tmp_path, f"b{seed}", "dilated_v2", seed, acc)
    _fake_run(tmp_path, "c", "dilated_v2", 2, None, status="failed")
    groups = group_runs(load_runs([tmp_path])[0])
    assert set(groups) == {"model=cnn", "model=dilated_v2"}
    rows = leaderboard(groups)
    assert [r["group"] for r in rows] == ["model=dilated_v2", "model=cnn"]
    assert rows[0]["test_acc"] == "95.00 ± 1.41" and rows[0]["failed"] == "1"
    assert rows[1]["test_acc"] == "91.00 ± 1.41" and rows[1]["runs"] == "2"
    table = compare([tmp_path], tmp_path / "report")
    assert table.splitlines()[2].startswith("| model=dilated_v2 | 3 | 1 | 95.00 ± 1.41")
    with open(tmp_path / "report" / "leaderboard.csv") as f:
        assert [r["group"] for r in csv.DictReader(f)] == ["model=dilated_v2", "model=cnn"]


def test_a_test_accuracy_over_part_of_the_test_split_says_so(tmp_path):
    for seed in (0, 1):
        for name, model, acc, tested in (
            ("a", "cnn", 0.9, 10_000),
            ("b", "dilated_v2", 0.95, 3_000),
        ):
            _fake_run(tmp_path, f"{name}{seed}", model, seed, acc, test_images=tested)
    rows = {r["group"]: r["test_acc"] for r in leaderboard(group_runs(load_runs([tmp_path])[0]))}
    assert rows == {
        "model=dilated_v2": "95.00 ± 0.00 (on 3,000 of the 10,000 test images)",
        "model=cnn": "90.00 ± 0.00",
    }


def test_runs_without_a_validated_epoch_still_get_their_plots(tmp_path):
    for seed in (0, 1):  # stopped by trainer.max_steps before their first validation
        _fake_run(tmp_path, f"a{seed}", "cnn", seed, 0.6, history=[{"epoch": 0, "val/acc": None}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warned of an empty legend
        compare([tmp_path])
    assert (tmp_path / "val_acc_per_epoch.png").stat().st_size > 5_000


def test_validation_curves_skip_the_epochs_that_were_not_validated(tmp_path):
    history = [{"epoch": e, "val/acc": v} for e, v in enumerate((None, 0.8, None, 0.9))]
    _fake_run(tmp_path, "a", "cnn", 0, 0.9, history=history)
    drawn = plot_val_curves(group_runs(load_runs([tmp_path])[0]), tmp_path / "curves.png")
    assert drawn == {"model=cnn": ([2, 4], [80.0, 90.0])}
    assert (tmp_path / "curves.png").stat().st_size > 5_000


def test_groups_by_whatever_varies(tmp_path):
    for lr in ("0.1", "0.01"):
        for seed in (0, 1):
            _fake_run(
                tmp_path,
                f"{lr}-{seed}",
                "cnn",
                seed,
                0.9,
                # settings that leave the figures as they are do not split a group
                overrides=["model=cnn", f"optimizer.lr={lr}", f"seed={seed}"]
                + ["print_config=false", "~logger", "trainer.enable_progress_bar=false"] * seed,
            )
    assert set(group_runs(load_runs([tmp_path])[0])) == {"optimizer.lr=0.1", "optimizer.lr=0.01"}


def test_test_only_runs_have_no_training_speed(tmp_path):
    _fake_run(tmp_path, "trained", "cnn", 0, 0.9)
    _fake_run(tmp_path, "tested", "cnn", 1, 0.9, train_time_s=None, train_images_per_s=None)
    (row,) = leaderboard(group_runs(load_runs([tmp_path])[0]))
    assert (row["train_time_s"], row["train_images_per_s"]) == ("10.0", "500")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "a JSON list, not an object"),
        (json.dumps({"model": "cnn"}), "no status"),
        (json.dumps({"status": "completed", "test_acc": "0.9"}), "test_acc is '0.9', not a finite"),
        (json.dumps({"status": "completed", "history": {"epoch": 1}}), "not list of epochs"),
        (b"\xff\xfe\x00", "not JSON"),
        # the examples, and the rest of their class: any JSON a file can hold
        (json.dumps({"status": "completed", "overrides": [1]}), "overrides is [1], not list of"),
        ('{"status": "completed", "test_acc": NaN}', "test_acc is nan, not a finite number"),
        ('{"status": "completed", "val_acc_best": Infinity}', "val_acc_best is inf"),
        (json.dumps({"status": "done"}), "status is 'done', not one of running, completed"),
        (json.dumps({"status": "completed", "seed": True}), "seed is True, not an integer"),
        (json.dumps({"status": "completed", "history": [{"val/acc": "x"}]}), "list of epochs"),
        (json.dumps({"status": "completed", "test_acc_per_class": [1]}), "object of numbers"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),
        (b"{" + b" " * (17 * 2**20) + b"}", "more than a run's record ever holds"),
    ],
)
def test_an_unreadable_results_file_is_named_and_counted(tmp_path, content, why):
    for seed in (0, 1):
        _fake_run(tmp_path, f"a{seed}", "cnn", seed, 0.9)
    broken = tmp_path / "broken" / "results.json"
    broken.parent.mkdir()
    broken.write_bytes(content if isinstance(content, bytes) else content.encode())
    runs, unreadable = load_runs([tmp_path])
    assert len(runs) == 2 and len(unreadable) == 1
    assert unreadable[0].startswith(f"{broken} (") and why in unreadable[0]
    report = compare([tmp_path])
    assert f"Left out: 1 results.json that cannot be read: {broken} (" in report
    assert "Left out" in (tmp_path / "leaderboard.md").read_text()
    broken.parent.parent.joinpath("a0", "results.json").write_text("{")
    broken.parent.parent.joinpath("a1", "results.json").write_text("{")
    with pytest.raises(UserError, match=r"None of the 3 results\.json under .* can be read"):
        load_runs([tmp_path])


def _group(accuracies: dict[int, float]) -> list[dict]:
    return [{"status": "completed", "seed": s, "test_acc": a} for s, a in accuracies.items()]


def test_differences_from_the_best_are_paired_by_seed_when_the_seeds_match():
    # the dilation study's resnet and dilated_degrid (experiments/dilation_study/README.md)
    resnet = _group({0: 0.9477, 1: 0.9523, 2: 0.9512})
    degrid = _group({0: 0.9424, 1: 0.9418, 2: 0.9459})
    d = difference(degrid, resnet)
    assert d["paired"] and d["tied"]  # -0.70 points, but 3 seeds cannot rule out 0
    assert d["difference"] == pytest.approx(-0.7033, abs=1e-3)
    # per-seed differences -0.53, -1.05, -0.53: sd 0.3002, t(0.975, 2) = 4.3027
    assert d["high"] - d["difference"] == pytest.approx(4.3027 * 0.3002 / 3**0.5, abs=2e-3)
    cnn = _group({0: 0.9182, 1: 0.9165, 2: 0.9179})
    assert not difference(cnn, resnet)["tied"]
    # other seeds: unpaired (Welch), and wider than paired for a seed-correlated pair
    shifted = _group({3: 0.9424, 4: 0.9418, 5: 0.9459})
    welch = difference(shifted, resnet)
    assert not welch["paired"] and welch["difference"] == pytest.approx(d["difference"])
    assert difference(_group({0: 0.9}), resnet) is None  # one run: no interval


def test_the_leaderboard_marks_the_groups_that_cannot_be_told_from_the_best(tmp_path):
    for seed, (a, b, c) in enumerate(
        ((0.95, 0.949, 0.90), (0.96, 0.958, 0.91), (0.955, 0.95, 0.9))
    ):
        _fake_run(tmp_path, f"a{seed}", "resnet", seed, a)
        _fake_run(tmp_path, f"b{seed}", "dilated_v2", seed, b)
        _fake_run(tmp_path, f"c{seed}", "cnn", seed, c)
    groups = group_runs(load_runs([tmp_path])[0])
    rows = leaderboard(groups)
    intervals = add_differences(rows, groups)
    vs = {row["group"]: row["vs_best"] for row in rows}
    assert vs["model=resnet"] == "best"
    assert vs["model=dilated_v2"].endswith("paired by seed, cannot be told apart")
    assert vs["model=cnn"].startswith("-5.17 [") and "cannot" not in vs["model=cnn"]
    assert intervals["model=cnn"]["high"] < 0
    compare([tmp_path])
    assert (tmp_path / "difference_from_best.png").stat().st_size > 5_000


def test_compare_without_runs_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match=r"No results\.json under"):
        load_runs([tmp_path])


@pytest.mark.slow
def test_optuna_search_survives_a_failing_trial_and_names_the_best(tiny_data, tmp_path):
    sweep_dir = tmp_path / "search"
    done = run_cli(
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=8",
        "model.width=8",
        'model.dilations=choice("[1,2]","[30]")',
        *tiny_overrides(tiny_data, tmp_path),
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={sweep_dir}",
    )
    runs = [json.loads(p.read_text()) for p in sweep_dir.glob("*/results.json")]
    assert len(runs) == 8
    failed = [r for r in runs if r["status"] == "failed"]
    assert failed and all("more than the 28x28 feature map" in r["error"] for r in failed)
    assert done.returncode == 1, "failed trials are reported in the exit code"
    best = (sweep_dir / "optimization_results.yaml").read_text()
    assert "best_params:" in best and "model.dilations: '[1,2]'" in best
    completed = [r["val_acc_best"] for r in runs if r["status"] == "completed"]
    assert f"best_value: {max(completed)}" in best


def _two_model_sweep(launcher: str, tiny_data, tmp_path, *extra: str):
    """`-m model=cnn,dilated_v2`, one epoch each, under `launcher`."""
    return run_cli(
        "-m",
        f"hydra/launcher={launcher}",
        "model=cnn,dilated_v2",
        *tiny_overrides(tiny_data, tmp_path),
        "module.channels_last=false",
        "trainer.max_epochs=1",
        *extra,
    )


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "parallel", SUBMITIT_LOCAL])
def test_a_sweep_started_in_the_same_second_as_another_gets_its_own_directory(
    launcher, tiny_data, tmp_path
):
    # what another sweep started in the same second made (the next seconds too, in case the
    # clock turns before this one starts)
    now = time.time()
    taken = [
        tmp_path / "multiruns" / time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now + s))
        for s in range(30)
    ]
    for directory in taken:
        directory.mkdir(parents=True)
    done = _two_model_sweep(launcher, tiny_data, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(not any(d.iterdir()) for d in taken), "the other sweep's directory is untouched"
    # every job, whichever process ran it, in the one directory the launching process claimed
    [sweep_dir] = {p.parent.parent for p in tmp_path.rglob("results.json")}
    assert sweep_dir.name.endswith("_2") and sweep_dir.parent == tmp_path / "multiruns"
    assert set(_jobs(sweep_dir)) == {"cnn", "dilated_v2"}
    assert str(sweep_dir) in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["parallel", SUBMITIT_LOCAL])
def test_launchers_run_every_job_and_report_in_the_launching_process(launcher, tiny_data, tmp_path):
    sweep_dir = tmp_path / "sweep"
    done = _two_model_sweep(launcher, tiny_data, tmp_path, f"hydra.sweep.dir={sweep_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = _jobs(sweep_dir)
    assert {m: j["status"] for m, j in jobs.items()} == {
        "cnn": "completed",
        "dilated_v2": "completed",
    }
    assert "2 completed, 0 failed, 0 skipped" in done.stderr


def test_slurm_launcher_config_documents_its_keys(tmp_path):
    from conftest import compose_run

    cfg = compose_run(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], tmp_path)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.timeout_min, launcher.gpus_per_node) == ("gpu", 60, 1)
    assert launcher.array_parallelism == 16


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("srun") is not None, reason="this machine is a SLURM node")
def test_slurm_off_a_cluster_is_one_sentence(tiny_data, tmp_path):
    done = run_cli("-m", "hydra/launcher=slurm", *tiny_overrides(tiny_data, tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "Error: hydra/launcher=slurm submits jobs to a SLURM cluster and finds no srun here"
        )
    )


@pytest.mark.slow
def test_ddp_with_two_cpu_processes_under_hydra_leaves_one_run(tiny_data, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = run_cli(
        "trainer=ddp",
        *tiny_overrides(tiny_data, tmp_path),
        "module.steps_per_call=null",  # the default, one step a call under DDP
        "data.batch_size=32",
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, "the second process ends cleanly too"
    assert len([line for line in done.stderr.splitlines() if line.startswith("cnn: test/acc")]) == 1
    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1, run_dirs
    [results_file] = tmp_path.rglob("results.json")
    results = json.loads(results_file.read_text())
    assert results["status"] == "completed" and results["test_acc"] > 0.5
    assert (run_dirs[0] / "train_ddp_process_1.log").is_file(), "the second process ran"
    # Lightning starts the second process with hydra.run.dir="<run dir>", quoted: read
    # unquoted, it made a directory named '"' where the command ran
    assert list(cwd.iterdir()) == []


@pytest.mark.slow
def test_ddp_refuses_several_steps_per_call_in_one_sentence(tiny_data, tmp_path):
    done = run_cli("trainer=ddp", *tiny_overrides(tiny_data, tmp_path), "module.steps_per_call=2")
    assert done.returncode == 2, done.stderr[-3000:]
    sentence = "module.steps_per_call=2 works on one device only"
    assert done.stderr.count(sentence) == 1, "said once, not once per process"
    [results_file] = tmp_path.rglob("results.json")
    assert json.loads(results_file.read_text())["status"] == "failed"
    # the second process's error stays in its own log file
    assert sentence in (results_file.parent / "train_ddp_process_1.log").read_text()


def test_compare_takes_any_record_its_description_allows(tmp_path):
    """Records drawn at random from results.RECORD (each key present or not, each of its kinds)
    are all ranked or listed: compare reads whatever the writer could have written."""
    import random

    from fashion_lab.results import RECORD, STATUSES, check_record

    rng = random.Random(0)
    samples = {
        "a finite number": lambda: rng.choice([0, 1, 0.5, 1e9, -3.0]),
        "an integer": lambda: rng.choice([0, 1, 7, 10**12]),
        "a string": lambda: rng.choice(["", "cnn", "x=1"]),
        "null": lambda: None,
        "bool": lambda: rng.choice([True, False]),
        "status": lambda: rng.choice(STATUSES),
        "object": lambda: {"k": rng.choice([1, "v", None])},
        "list of strings": lambda: rng.choice([[], ["model=cnn"], ["seed=1", "x"]]),
        "list of objects": lambda: rng.choice([[], [{}], [{"a": 1}]]),
        "object of numbers": lambda: rng.choice([{}, {"Bag": 0.5}]),
        "list of epochs": lambda: rng.choice(
            [[], [{"epoch": 0, "val/acc": None}], [{"val/acc": 0.8}]]
        ),
    }
    for i in range(60):
        record = {
            key: samples[rng.choice(kinds)]()
            for key, kinds in RECORD.items()
            if key == "status" or rng.random() < 0.6
        }
        assert check_record(record) is None, record
        (tmp_path / f"r{i}").mkdir()
        (tmp_path / f"r{i}" / "results.json").write_text(json.dumps(record))
    report = compare([tmp_path], tmp_path / "out")
    runs, unreadable = load_runs([tmp_path])
    assert len(runs) == 60 and not unreadable
    assert report.count("\n| ") >= 1


@pytest.mark.slow
def test_a_sweep_counts_a_diverged_job_apart(tiny_data, tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = [
        "-m",
        "optimizer.lr=0.004,1e6",
        *tiny_overrides(tiny_data, tmp_path),
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    done = run_cli(*args)
    assert done.returncode == 1, "a sweep with a job that is not completed exits non-zero"
    assert "1 completed, 0 failed, 1 diverged or at chance (not ranked)" in done.stderr
    statuses = sorted(json.loads(p.read_text())["status"] for p in sweep_dir.glob("*/results.json"))
    assert statuses == ["completed", "diverged"]
    assert "Not ranked: 1 runs" in compare([sweep_dir])


def test_a_sweep_jobs_directory_shows_what_the_sweep_varies(monkeypatch):
    from omegaconf import OmegaConf

    from fashion_lab.config import SWEPT, job_dir
    from fashion_lab.sweep import swept_keys

    command_line = [
        "model=cnn,dilated_v2",
        "seed=0",
        "optimizer.lr=interval(0.1,1)",
        "data.root=/d",
    ]
    config = OmegaConf.create(
        {
            "hydra": {
                "overrides": {"task": command_line},
                "sweeper": {"params": {"model.dropout": "interval(0, 0.5)", "model": "cnn"}},
            }
        }
    )
    assert swept_keys(config) == ["model", "optimizer.lr", "model.dropout"]
    monkeypatch.setenv(SWEPT, "model,seed,optimizer.lr")
    job = [
        "data.root=/a/long/path/" + "x" * 90,
        "model=cnn",
        "seed=3",
        "optimizer.lr=0.00123456789",
    ]
    assert job_dir(7, job, "all of them") == "7_model=cnn,seed=3,optimizer.lr=0.001235"
    monkeypatch.setenv(SWEPT, "")  # a sweep that varies nothing: Hydra's override_dirname
    assert job_dir(7, job, "a=1,b=2") == "7_a=1,b=2"
