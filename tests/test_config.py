"""Every option of every config group composes, and builds the objects it describes."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
from conftest import compose_run, run_cli

from fashion_lab import build, plan
from fashion_lab.config import CONFIG_DIR, short_name
from fashion_lab.errors import UserError

SLOW = pytest.mark.slow
GROUPS = ("data", "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "paths")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group} is empty"
    assert {"adam", "adamw", "sgd"} <= set(options("optimizer"))
    assert {"none", "cosine", "onecycle"} <= set(options("scheduler"))
    assert {"default", "cpu", "gpu"} <= set(options("trainer"))
    assert {"tensorboard", "csv"} <= set(options("logger"))
    assert {"cnn", "dilated_v1", "dilated_v2"} <= set(options("model"))


@pytest.mark.parametrize(
    "override",
    [f"{group}={option}" for group in GROUPS for option in options(group)]
    + [f"experiment={option}" for option in options("experiment")]
    + [f"hparams_search={option}" for option in options("hparams_search")],
)
def test_each_option_composes(override, tmp_path):
    cfg = compose_run([override], tmp_path)
    group, option = override.split("=")
    if group == "model":
        assert cfg.model_name == option
        assert build.network(cfg.model) is not None
    if group in ("optimizer", "scheduler"):
        run = plan.settings(cfg)
        assert build.module(cfg, build.network(cfg.model), run, {}) is not None
    if group in ("data", "paths"):
        assert build.datamodule(cfg).batch_size > 0


@pytest.mark.parametrize("trainer", [o for o in options("trainer") if o != "gpu"])
@pytest.mark.parametrize("logger", options("logger"))
def test_trainer_logger_and_callbacks_build(trainer, logger, tmp_path):
    cfg = compose_run([f"trainer={trainer}", f"logger={logger}"], tmp_path)
    built = build.trainer(cfg, plan.settings(cfg))
    assert isinstance(built, pl.Trainer)
    assert built.max_epochs == cfg.trainer.max_epochs
    assert any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in built.callbacks)
    assert len(built.loggers) == 1


def test_several_loggers_at_once(tmp_path):
    cfg = compose_run(["logger=[tensorboard,csv]"], tmp_path)
    assert len(build.trainer(cfg, plan.settings(cfg)).loggers) == 2


def test_seed_zero_is_kept_and_used(tmp_path):
    cfg = compose_run(["seed=0"], tmp_path)
    assert cfg.seed == 0
    assert build.datamodule(cfg).shuffle_seed == 0


def test_optimizers_and_schedulers_are_partial(tmp_path):
    for group in ("optimizer", "scheduler"):
        for option in options(group):
            cfg = compose_run([f"{group}={option}"], tmp_path)
            if cfg.get(group):
                assert cfg[group]._partial_ is True


def test_outputs_come_from_hydra_and_the_process_stays_put(tmp_path):
    cfg = compose_run([], tmp_path)
    assert cfg.hydra.job.chdir is False
    raw = (CONFIG_DIR / "paths" / "default.yaml").read_text()
    assert "output_dir: ${hydra:runtime.output_dir}" in raw


def test_sweep_directory_names_stay_short_and_unique():
    long_a = ",".join(f"key{i}=value{i}" for i in range(40))
    long_b = long_a + ",x=1"
    assert short_name("model=cnn,seed=0") == "model=cnn,seed=0"
    assert short_name("") == "default"
    assert "/" not in short_name("data.root=/a/b")
    assert len(short_name(long_a)) == 80
    assert short_name(long_a) != short_name(long_b)


def test_the_divergence_hint_is_an_override_that_composes(tmp_path):
    # the DivergenceError sentence tells the user to write these
    cfg = compose_run(["optimizer.lr=0.0001", "trainer.gradient_clip_val=1.0"], tmp_path)
    assert cfg.trainer.gradient_clip_val == 1.0


def test_a_group_is_left_out_with_a_tilde(tmp_path):
    cfg = compose_run(["~logger", "~callbacks"], tmp_path)
    trainer = build.trainer(cfg, plan.settings(cfg))
    assert trainer.loggers == []
    assert trainer.checkpoint_callback.monitor is None, "Lightning's default, not conf's"


def test_an_install_without_the_configs_says_to_install_from_a_clone(monkeypatch, tmp_path):
    import fashion_lab.config

    monkeypatch.setattr(fashion_lab.config, "CONFIG_DIR", tmp_path / "site-packages" / "conf")
    with pytest.raises(UserError, match=r"The configs are not at .*site-packages.*pip install -e"):
        fashion_lab.config.compose_config([], tmp_path)


@pytest.mark.slow
def test_help_names_the_program_its_commands_and_every_option():
    done = run_cli("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("fashion_lab: train and compare Fashion-MNIST classifiers")
    assert "python -m fashion_lab -m model=cnn,dilated_v2 seed=0,1,2" in done.stdout
    models = "cnn, dilated_degrid, dilated_hdc, dilated_v1, dilated_v2, plain, resnet"
    assert f"model: {models}" in done.stdout


def test_runs_started_in_the_same_second_get_directories_of_their_own(tmp_path):
    from fashion_lab.config import claim

    taken = tmp_path / "2026-11-23_12-00-00_cnn"
    taken.mkdir()  # what another run that started in the same second did
    mine = claim(str(taken))
    assert mine == f"{taken}_2" and Path(mine).is_dir()
    assert claim(str(taken)) == mine, "the same answer for the rest of the process"
    fresh = tmp_path / "2026-11-23_12-00-01_cnn"
    assert claim(str(fresh)) == str(fresh) and fresh.is_dir()


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        # Hydra raised a ValueError with a stack trace
        (["-m", "--cfg", "hydra"], "Only one of --run, --multirun, --cfg, --info and"),
        (
            ["model=nope"],
            "In 'config': Could not find 'model/nope'; Available options in 'model': cnn, "
            "dilated_degrid,",
        ),
        # each costs a process start (~10 s): the others run with the slow tests
        pytest.param(["-cn", "quick"], "Cannot find primary config 'quick'", marks=SLOW),
        pytest.param(
            ["--config-dir", "/no/such/dir"],
            "Additional config directory '/no/such/dir' not found",
            marks=SLOW,
        ),
        pytest.param(
            ["trainer.max_epoch=3"],
            "Could not override 'trainer.max_epoch'. To append to your config use "
            "+trainer.max_epoch=3",
            marks=SLOW,
        ),
        pytest.param(
            ["data.batch_size=abc"],
            "Error merging override data.batch_size=abc; Value 'abc' of type 'str' could not be "
            "converted to Integer",
            marks=SLOW,
        ),
    ],
)
def test_what_hydra_refuses_is_its_own_sentence_on_one_line(args, sentence):
    done = run_cli(*args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"Error: {sentence}")


@pytest.mark.slow
def test_hydras_own_options_and_their_values_are_not_taken_for_overrides():
    done = run_cli("--cfg", "hydra")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("hydra:")
    done = run_cli("--info", "defaults", "model=resnet")
    assert done.returncode == 0, done.stderr
    assert "model/resnet" in done.stdout


@pytest.mark.slow
def test_a_full_error_shows_hydras_traceback_to_a_developer():
    import os

    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "fashion_lab", "model=nope"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1 and "Traceback" in done.stderr
