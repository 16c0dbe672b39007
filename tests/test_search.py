"""hparams_search=optuna: a study that persists, continues where it stopped, never runs the same
parameters or job number twice, and prunes trials that fall behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import REPO, run_cli, signal_after_a_checkpoint, tiny_overrides
from optuna.trial import TrialState

from fashion_lab.search import search_space


def _search(tiny_data, tmp_path: Path, sweep_dir: Path, *extra: str):
    return run_cli(
        "-m",
        "hparams_search=optuna",
        "model.width=8",
        'model.dilations=choice("[1,2]","[1,1]")',
        *tiny_overrides(tiny_data, tmp_path),
        "trainer.max_epochs=2",
        f"hydra.sweep.dir={sweep_dir}",
        *extra,
    )


@pytest.mark.slow
def test_a_study_run_again_continues_without_repeating_a_trial(tiny_data, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    sweep_dir = tmp_path / "search"
    no_pruning = "hydra.sweeper.pruner=null"  # every trial runs to its end here
    first = _search(
        tiny_data,
        tmp_path,
        sweep_dir,
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_trials=3",
        no_pruning,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    again = _search(
        tiny_data,
        tmp_path,
        sweep_dir,
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_trials=5",
        no_pruning,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 completed, 0 failed, 3 skipped (completed earlier)" in again.stderr, again.stderr[
        -2000:
    ]

    study = optuna.load_study(study_name="fashion_lab", storage=storage)
    run = [t for t in study.trials if "duplicate_of" not in t.user_attrs]
    assert [t.number for t in run if t.state == TrialState.COMPLETE] == [t.number for t in run]
    assert len(run) == 5, "the earlier trials count toward n_trials"
    params = [json.dumps(t.params, sort_keys=True) for t in run]
    assert len(set(params)) == 5, "no parameters proposed twice"
    jobs = sorted(int(p.name.split("_")[0]) for p in sweep_dir.glob("*_*") if p.is_dir())
    assert jobs == [t.number for t in run], "job k is trial k: no job number reused"
    for trial in run:
        [job] = sweep_dir.glob(f"{trial.number}_*")
        record = json.loads((job / "results.json").read_text())
        assert record["val_acc_best"] == trial.value
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_value"] == study.best_value and best["trials"]["complete"] == 5


@pytest.mark.slow
def test_a_trial_that_falls_behind_is_pruned_and_counted(tiny_data, tmp_path):
    sweep_dir = tmp_path / "search"
    done = _search(
        tiny_data,
        tmp_path,
        sweep_dir,
        "hydra.sweeper.n_trials=3",
        # a threshold no trial reaches: each is pruned at its first validated epoch
        "~hydra.sweeper.pruner",
        "+hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:2.0}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "0 completed, 0 failed, 3 pruned, 0 skipped" in done.stderr, done.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/results.json"))]
    assert [r["status"] for r in records] == ["pruned"] * 3
    assert all(r["error"].startswith("pruned at epoch 0: val/acc ") for r in records)
    assert all(len(r["history"]) == 1 for r in records), "stopped after its first epoch"
    study = optuna.load_study(study_name="fashion_lab", storage=f"sqlite:///{sweep_dir}/optuna.db")
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 3
    summary = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert summary["trials"] == {"complete": 0, "pruned": 3, "fail": 0}


def test_the_search_space_comes_from_hydras_sweep_syntax():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space, fixed = search_space(
        [
            "a=tag(log, interval(0.001, 0.1))",
            "b=interval(0, 4)",
            "c=choice(x,y)",
            "d=range(2, 10, 2)",
            "e=3",
        ]
    )
    assert space == {
        "a": FloatDistribution(0.001, 0.1, log=True),
        "b": FloatDistribution(0, 4),  # Hydra's intervals are of floats
        "c": CategoricalDistribution(["x", "y"]),
        "d": IntDistribution(2, 8, step=2),
    }
    assert fixed == {"e": "3"}


@pytest.mark.slow
def test_a_trial_a_stopped_search_left_running_continues_from_its_checkpoint(
    slow_enough_data, tmp_path
):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["-m", "hparams_search=optuna", "model.width=8", "hydra.sweeper.n_trials=2"]
    args += [*tiny_overrides(slow_enough_data, tmp_path), "trainer.max_epochs=3"]
    args += [f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={tmp_path / 'search'}"]
    args.append("hydra.sweeper.pruner=null")
    code, stderr = signal_after_a_checkpoint(
        args, "search/0_*/checkpoints/last.ckpt", tmp_path, signal.SIGTERM
    )
    assert code == 143, stderr[-2000:]
    study = optuna.load_study(study_name="fashion_lab", storage=storage)
    # the stopped trial is failed and queued again (Optuna's retry), to be continued
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    assert study.trials[1].system_attrs["failed_trial"] == 0

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(study_name="fashion_lab", storage=storage)
    assert [(t.number, t.state) for t in study.trials] == [
        (0, TrialState.FAIL),
        (1, TrialState.COMPLETE),
        (2, TrialState.COMPLETE),
    ]
    # trial 1 continued trial 0 in its directory, from its checkpoint; n_trials=2 counts 1 and 2
    jobs = [p.name.split("_")[0] for p in (tmp_path / "search").glob("*_*") if p.is_dir()]
    assert sorted(jobs) == ["0", "2"]
    [job] = (tmp_path / "search").glob("0_*")
    record = json.loads((job / "results.json").read_text())
    assert record["epochs"] == 3 and record["resumes"][0]["at_epoch"] >= 1, "continued"
    assert record["val_acc_best"] == study.trials[1].value


@pytest.mark.slow
def test_a_storage_that_cannot_be_opened_is_one_sentence(tmp_path):
    storage = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'study.db'}"
    done = run_cli(
        "-m",
        "hparams_search=optuna",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={tmp_path / 'search'}",
        f"paths.log_dir={tmp_path}",
    )
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: Cannot open the Optuna study fashion_lab in {storage} ("), last
    assert "Traceback" not in done.stderr


def _storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def _sweep_args(
    data: Path, tmp_path: Path, n_trials: int, epochs: int, *extra: str, storage: str = ""
) -> list[str]:
    return [
        "-m",
        "hparams_search=optuna",
        "model.width=8",
        "optimizer.lr=choice(0.001,0.002,0.003,0.004,0.005,0.006,0.007,0.008,0.009,0.01)",
        *tiny_overrides(data, tmp_path),
        f"trainer.max_epochs={epochs}",
        f"hydra.sweeper.storage={storage or _storage(tmp_path)}",
        f"hydra.sweep.dir={tmp_path / 'search'}",
        f"hydra.sweeper.n_trials={n_trials}",
        "hydra.sweeper.pruner=null",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
@pytest.mark.parametrize("processes", [2, 3])
def test_processes_started_together_share_one_study(
    tiny_data, tmp_path, processes, database, request
):
    # a new database, empty: the processes race to create the study's tables and row
    storage = request.getfixturevalue("postgres_url") if database == "postgresql" else ""
    storage = storage or _storage(tmp_path)
    args = _sweep_args(tiny_data, tmp_path, 5, 1, storage=storage)
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "fashion_lab", *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"stderr{i}.txt").open("w"),
        )
        for i in range(processes)
    ]
    codes = [p.wait(timeout=600) for p in started]
    said = [(tmp_path / f"stderr{i}.txt").read_text()[-2000:] for i in range(processes)]
    assert codes == [0] * processes, said
    study = optuna.load_study(study_name="fashion_lab", storage=storage)
    ran = [t for t in study.trials if "duplicate_of" not in t.user_attrs]
    assert {t.state for t in ran} == {TrialState.COMPLETE}, "none failed, none left running"
    assert 5 <= len(ran) <= 5 + processes  # n_trials, overshot by at most one per process
    params = [repr(sorted(t.params.items())) for t in ran]
    assert len(set(params)) == len(params), "no parameters ran twice"
    jobs = {int(p.name.split("_")[0]): p for p in (tmp_path / "search").iterdir() if p.is_dir()}
    assert sorted(jobs) == sorted(t.number for t in ran), "one directory per trial, its own"
    for trial in ran:
        record = json.loads((jobs[trial.number] / "results.json").read_text())
        assert record["val_acc_best"] == trial.value and record["status"] == "completed"


@pytest.mark.slow
def test_a_trial_whose_process_was_killed_is_continued_by_another(slow_enough_data, tmp_path):
    beat = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=3"]
    args = _sweep_args(slow_enough_data, tmp_path, 1, 3, *beat)
    code, _ = signal_after_a_checkpoint(
        args, "search/0_*/checkpoints/last.ckpt", tmp_path, signal.SIGKILL
    )
    assert code == -signal.SIGKILL
    storage = _storage(tmp_path)
    killed = optuna.load_study(study_name="fashion_lab", storage=storage)
    assert [t.state for t in killed.trials] == [TrialState.RUNNING]
    again = run_cli(*args)  # trial 0 is taken over once its heartbeat is 3 s old, not before
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(study_name="fashion_lab", storage=storage)
    assert [(t.number, t.state) for t in study.trials] == [
        (0, TrialState.FAIL),
        (1, TrialState.COMPLETE),
    ]
    assert study.trials[1].system_attrs["failed_trial"] == 0
    [job] = (tmp_path / "search").glob("0_*")
    record = json.loads((job / "results.json").read_text())
    assert record["resumes"][0]["at_epoch"] >= 1 and record["epochs"] == 3, "from its checkpoint"
    assert record["val_acc_best"] == study.trials[1].value


@pytest.mark.slow
def test_a_study_of_two_objectives_shows_its_pareto_front(tiny_data, tmp_path):
    objectives = "hydra.sweeper.objectives={val_acc_best: maximize, parameters: minimize}"
    args = _sweep_args(tiny_data, tmp_path, 4, 1, objectives, "model.width=choice(4,8,16)")
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="fashion_lab", storage=_storage(tmp_path))
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    summary = yaml.safe_load((tmp_path / "search" / "optimization_results.yaml").read_text())
    front = {t["trial"]: (t["val_acc_best"], t["parameters"]) for t in summary["pareto_front"]}
    assert front == {t.number: tuple(t.values) for t in study.best_trials}
    for trial in study.trials:  # none outside the front beats one on it on both figures
        acc, size = trial.values
        assert not any(a <= acc and s >= size and (a, s) != (acc, size) for a, s in front.values())
    assert (
        "| run | val_acc_best (max) | parameters (min) |"
        in (tmp_path / "search" / "pareto.md").read_text()
    )
    assert (tmp_path / "search" / "pareto.png").stat().st_size > 5_000
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "search").glob("0_*/results.json")]
    assert record["macs_per_image"] > 0


def _dashboard(storage: str, path: str) -> dict:
    """GET `path` from optuna-dashboard's own API, its server run on loopback over `storage`."""
    import threading
    import urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import optuna_dashboard

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = make_server("127.0.0.1", 0, optuna_dashboard.wsgi(storage), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}{path}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            return json.loads(answer.read())
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "two objectives", "postgresql"])
def test_optuna_dashboard_reads_the_study(tiny_data, tmp_path, kind, request):
    storage = request.getfixturevalue("postgres_url") if kind == "postgresql" else ""
    storage = storage or _storage(tmp_path)
    extra = ["model.width=choice(4,8,16)"]
    if kind == "two objectives":
        extra.append("hydra.sweeper.objectives={val_acc_best: maximize, parameters: minimize}")
    args = _sweep_args(tiny_data, tmp_path, 2, 2, *extra, storage=storage)
    if kind != "two objectives":  # the median pruner: each epoch's val/acc reported to the study
        args.remove("hydra.sweeper.pruner=null")  # (it prunes none of the first 3 trials)
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    [summary] = _dashboard(storage, "/api/studies")["study_summaries"]
    assert summary["study_name"] == "fashion_lab"
    directions = ["maximize", "minimize"] if kind == "two objectives" else ["maximize"]
    assert summary["directions"] == directions
    detail = _dashboard(storage, f"/api/studies/{summary['study_id']}")
    study = optuna.load_study(study_name="fashion_lab", storage=storage)
    assert len(detail["trials"]) == len(study.trials) == 2
    for shown, trial in zip(detail["trials"], study.trials, strict=True):
        assert shown["state"] == "Complete" and shown["values"] == list(trial.values)
        params = {p["name"]: p["param_external_value"] for p in shown["params"]}
        assert params["model.width"] == str(trial.params["model.width"])
        if kind != "two objectives":  # per-epoch val/acc, as the pruner saw it
            steps = [v["step"] for v in shown["intermediate_values"]]
            assert steps == [0, 1], shown["intermediate_values"]


@pytest.mark.slow
def test_a_worker_starts_its_next_trial_as_soon_as_its_last_ends(slow_enough_data, tmp_path):
    args = [
        "-m",
        *tiny_overrides(slow_enough_data, tmp_path),
        "hydra/sweeper=optuna",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.pruner=null",
        "trainer.max_epochs=choice(1,4)",
        "optimizer.lr=interval(0.001,0.002)",
        f"hydra.sweep.dir={tmp_path / 'search'}",
    ]
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = []
    for path in (tmp_path / "search").glob("*/results.json"):
        record = json.loads(path.read_text())
        runs.append((record["finished_at"] - record["wall_time_s"], record["finished_at"]))
    assert len(runs) == 6 and (tmp_path / "search" / "worker1.log").is_file()
    # in lockstep, trials start together and the next pair when both ended; here a trial starts
    # while an earlier one (started a second or more before it) still runs
    assert any(s1 + 1 < s2 < f1 - 0.5 for s1, f1 in runs for s2, _ in runs), sorted(runs)
