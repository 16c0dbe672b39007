"""A scheduler's signals (SIGTERM, SIGUSR1, SIGUSR2, ...) stop a run as Ctrl-C does; submitit
requeues its jobs, which resume to an uninterrupted run's metrics; what a resume may change."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import compose_run, run_cli, signal_after_a_checkpoint, tiny_overrides

from fashion_lab import stops
from fashion_lab.checkpoints import RunCheckpoint, load_checkpoint
from fashion_lab.config import to_dict
from fashion_lab.errors import UserError
from fashion_lab.resume import resumed_config

METRICS = ("val_acc", "val_acc_best", "val_loss", "test_acc", "test_loss")


def _results(directory: Path) -> dict:
    [path] = directory.rglob("results.json")
    return json.loads(path.read_text())


def _wait_for_signal() -> None:
    time.sleep(2)  # the handler raises here
    raise AssertionError("no Stopped raised")


def test_a_stop_signal_raises_stopped_once_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(stops.Stopped) as caught, stops.stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        _wait_for_signal()
    assert caught.value.name == "SIGTERM" and stops.exit_code(caught.value) == 143
    assert isinstance(caught.value, KeyboardInterrupt), "Lightning stops as at Ctrl-C"
    assert signal.getsignal(signal.SIGTERM) is before

    with stops.stop_on_signals():
        with pytest.raises(stops.Stopped):
            os.kill(os.getpid(), signal.SIGUSR1)
            _wait_for_signal()
        os.kill(os.getpid(), signal.SIGUSR2)  # while the run saves its record: ignored
        time.sleep(0.2)


def test_a_signal_the_user_ignores_stays_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with stops.stop_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_the_record_and_the_last_line_name_the_signal():
    assert stops.reason(KeyboardInterrupt()) == "stopped by the user (Ctrl-C)"
    assert stops.opening(KeyboardInterrupt()) == "Interrupted"
    assert stops.exit_code(None) == 130
    term = stops.Stopped(signal.SIGTERM)
    assert stops.opening(term) == (
        "Stopped by SIGTERM (a scheduler's time limit or preemption, scancel, or kill)"
    )
    assert stops.exit_code(stops.Stopped(signal.SIGUSR2)) == 140
    assert term.submitit_handler() is None and term.timed_out is None


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ("optimizer.lr=0.05", "its optimizer's state, the learning rate included, is restored"),
        ("optimizer=sgd", "its optimizer's state"),
        ("scheduler=none", "its learning-rate schedule is restored as it was"),
        ("seed=7", "its random streams are drawn from the seed it started with"),
        ("data.val_size=64", "its validation split must stay"),
    ],
)
def test_a_resume_refuses_what_the_checkpoint_fixes(override, why, tiny_data, tmp_path):
    stored = to_dict(compose_run(tiny_overrides(tiny_data, tmp_path), tmp_path))
    cfg = compose_run([*tiny_overrides(tiny_data, tmp_path), override], tmp_path)
    with pytest.raises(UserError) as refused:
        resumed_config(cfg, stored, [override])
    message = str(refused.value)
    if "." in override:  # a setting, not a group: its value at the checkpoint is named
        assert f"; it has {override.split('=')[0]}=" in message, message
    assert message.startswith(f"{override} cannot change a run that resumes ({why}"), message
    assert message.endswith("resume without it, or start a new run (no ckpt_path).")


def test_a_resume_applies_and_reports_what_it_may_change(tiny_data, tmp_path):
    stored = to_dict(compose_run(tiny_overrides(tiny_data, tmp_path), tmp_path))
    changes = ["trainer.max_epochs=5", "data.augment.hflip=0.5", "seed=0", "optimizer.lr=0.004"]
    cfg = compose_run([*tiny_overrides(tiny_data, tmp_path), *changes], tmp_path)
    merged, changed = resumed_config(cfg, stored, changes)
    assert merged.trainer.max_epochs == 5 and merged.data.augment.hflip == 0.5
    # seed and lr as the checkpoint has them: no change, nothing refused
    assert changed == {
        "trainer.max_epochs": {"from": 2, "to": 5},
        "data.augment.hflip": {"from": 0.0, "to": 0.5},
    }


def test_a_group_given_again_at_a_resume_changes_nothing_and_keeps_the_picks(tiny_data, tmp_path):
    # a sweep job requeued with trainer=cpu on its command line: its trainer group is composed
    # afresh, its precision null (to be timed) and its paths unresolved
    overrides = [o for o in tiny_overrides(tiny_data, tmp_path) if "precision" not in o]
    stored = to_dict(compose_run([*overrides, "trainer=cpu"], tmp_path))
    stored["trainer"]["precision"] = "bf16-mixed"  # what null picked when the run started
    cfg = compose_run([*overrides, "trainer=cpu"], tmp_path)
    merged, changed = resumed_config(cfg, stored, ["trainer=cpu"])
    assert changed == {}
    assert merged.trainer.precision == "bf16-mixed", "a resume keeps the run's pick"
    longer = compose_run([*overrides, "trainer=cpu", "trainer.max_epochs=4"], tmp_path)
    _, changed = resumed_config(longer, stored, ["trainer=cpu", "trainer.max_epochs=4"])
    assert changed == {"trainer.max_epochs": {"from": 2, "to": 4}}


def test_a_copied_run_keeps_its_best_score_and_its_own_best_checkpoint(tmp_path):
    old, new = tmp_path / "run" / "checkpoints", tmp_path / "copy" / "checkpoints"
    saved = RunCheckpoint(dirpath=old, filename="best", monitor="val/acc", mode="max")
    saved.best_model_score = 0.9
    saved.best_model_path = saved.kth_best_model_path = str(old / "best.ckpt")
    saved.best_k_models = {str(old / "best.ckpt"): 0.9}
    copy = RunCheckpoint(dirpath=new, filename="best", monitor="val/acc", mode="max")
    copy.load_state_dict(saved.state_dict())
    assert copy.best_model_score == 0.9, "Lightning dropped it when the directory changed"
    assert copy.best_model_path == copy.kth_best_model_path == str(new / "best.ckpt")
    assert copy.best_k_models == {str(new / "best.ckpt"): 0.9}


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGXCPU]
)
def test_a_stop_signal_saves_the_run_and_says_how_to_continue(signum, slow_enough_data, tmp_path):
    args = [*tiny_overrides(slow_enough_data, tmp_path), "trainer.max_epochs=4"]
    code, stderr = signal_after_a_checkpoint(args, "runs/*/checkpoints/last.ckpt", tmp_path, signum)
    [run_dir] = tmp_path.glob("runs/*")
    name = signal.Signals(signum).name
    assert code == 128 + signum, stderr[-2000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"Stopped by {name} ("), last
    assert last.endswith(
        f"; the finished epochs are saved, continue with `python -m fashion_lab "
        f"ckpt_path={run_dir}`."
    )
    record = _results(run_dir)
    assert record["status"] == "interrupted" and record["signal"] == name
    assert record["error"].startswith(f"stopped by {name} (")
    assert load_checkpoint(run_dir / "checkpoints/last.ckpt")["epoch"] < 3


@pytest.mark.slow
def test_sigterm_then_resume_ends_as_an_uninterrupted_run(slow_enough_data, tmp_path):
    recipe = [*tiny_overrides(slow_enough_data, tmp_path), "trainer.max_epochs=4"]
    recipe += ["trainer.deterministic=true"]
    whole = run_cli(*recipe, f"paths.log_dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr[-2000:]
    log_dir = tmp_path / "stopped"
    code, _ = signal_after_a_checkpoint(
        [*recipe, f"paths.log_dir={log_dir}"],
        "runs/*/checkpoints/last.ckpt",
        log_dir,
        signal.SIGTERM,
    )
    assert code == 143
    [run_dir] = log_dir.glob("runs/*")
    saved = load_checkpoint(run_dir / "checkpoints/last.ckpt")["epoch"]
    resumed = run_cli(f"ckpt_path={run_dir}", f"paths.log_dir={log_dir}", "trainer.max_epochs=4")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after, before = _results(run_dir), _results(tmp_path / "whole")
    assert after["status"] == "completed" and after["epochs"] == 4
    assert {k: after[k] for k in METRICS} == {k: before[k] for k in METRICS}
    assert [h["val/acc"] for h in after["history"]] == [h["val/acc"] for h in before["history"]]
    assert after["resumes"] == [
        {
            "at_epoch": saved + 1,
            "after": "interrupted: stopped by SIGTERM (a scheduler's time limit or preemption, "
            "scancel, or kill)",
            "changed": {},
        }
    ]


@pytest.mark.slow
def test_sigterm_stops_a_sweep_whose_rerun_continues_the_job(slow_enough_data, tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "seed=0,1", *tiny_overrides(slow_enough_data, tmp_path), "trainer.max_epochs=3"]
    args.append(f"hydra.sweep.dir={sweep_dir}")
    code, stderr = signal_after_a_checkpoint(
        args, "sweep/0_*/checkpoints/last.ckpt", tmp_path, signal.SIGTERM
    )
    assert code == 143, stderr[-2000:]
    assert (
        stderr.strip()
        .splitlines()[-1]
        .endswith(
            f"; run the same sweep again with hydra.sweep.dir={sweep_dir} to skip its completed "
            "jobs and continue this one from its last checkpoint."
        )
    )
    [job] = sweep_dir.glob("0_*")
    assert _results(job)["status"] == "interrupted"
    saved = load_checkpoint(job / "checkpoints/last.ckpt")["epoch"]
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    after = _results(job)
    assert after["status"] == "completed" and after["epochs"] == 3
    assert after["resumes"][0]["at_epoch"] == saved + 1, "continued, not retrained"


@pytest.mark.slow
def test_sigterm_to_a_parallel_sweeps_launcher_stops_its_jobs_which_keep_their_progress(
    slow_enough_data, tmp_path
):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "seed=0,1,2", *tiny_overrides(slow_enough_data, tmp_path)]
    args += ["trainer.max_epochs=3", f"hydra.sweep.dir={sweep_dir}", "hydra/launcher=parallel"]
    code, stderr = signal_after_a_checkpoint(
        args,
        "sweep/*/checkpoints/last.ckpt",
        tmp_path,
        signal.SIGTERM,
        group=2,
        to=lambda launcher: launcher.pid,  # the launching process alone, not its workers
    )
    assert code == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("Stopped by SIGTERM ("), stderr[-2000:]
    assert "0 completed, 0 failed, 2 interrupted, 0 skipped" in stderr, stderr[-2000:]
    running = [job for n in (0, 1) for job in sweep_dir.glob(f"{n}_*")]
    assert [_results(job)["signal"] for job in running] == ["SIGTERM", "SIGTERM"]
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "3 completed, 0 failed, 0 skipped" in again.stderr, again.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("timeout_min", "reason"),
    [(60, "submitit: preempted"), (1, "submitit: the job's time limit is near")],
    ids=["preemption", "timeout"],
)
def test_submitit_requeues_a_job_that_resumes_to_the_uninterrupted_metrics(
    timeout_min, reason, slow_enough_data, tmp_path
):
    # submitit takes its signal (SIGUSR2) for the time limit when the job has run most of its
    # timeout_min (always, at 1 minute), else for a preemption; it requeues both
    recipe = ["-m", "seed=0", *tiny_overrides(slow_enough_data, tmp_path), "trainer.max_epochs=4"]
    recipe += ["trainer.deterministic=true", "hydra/launcher=submitit_local"]
    recipe.append(f"hydra.launcher.timeout_min={timeout_min}")
    whole = run_cli(*recipe, f"hydra.sweep.dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr[-2000:]

    sweep_dir = tmp_path / "sweep"
    code, stderr = signal_after_a_checkpoint(
        [*recipe, f"hydra.sweep.dir={sweep_dir}"],
        "sweep/0_*/checkpoints/last.ckpt",
        tmp_path,
        signal.SIGUSR2,
        to=lambda _: int(next(sweep_dir.glob("0_*/.lock")).read_text()),  # the job's process
    )
    assert code == 0, stderr[-2000:]
    assert "1 completed, 0 failed" in stderr, stderr[-2000:]
    [job] = sweep_dir.glob("0_*")
    after, before = _results(job), _results(tmp_path / "whole")
    assert after["status"] == "completed" and after["epochs"] == 4
    assert {k: after[k] for k in METRICS} == {k: before[k] for k in METRICS}
    assert [h["val/acc"] for h in after["history"]] == [h["val/acc"] for h in before["history"]]
    [resume] = after["resumes"]
    assert resume["after"] == f"interrupted: stopped by SIGUSR2 ({reason})", resume
    assert 1 <= resume["at_epoch"] < 4
    [log] = job.glob("*.log")
    assert "submitit requeues it to continue from its last checkpoint" in log.read_text()
