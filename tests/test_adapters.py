"""Each private internal fashion_lab uses (fashion_lab/adapters.py) still works as it assumes:
these fail when an upgrade of Lightning, Hydra or TensorBoard changes one."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger

from fashion_lab import adapters


def test_the_count_of_stepped_batches_is_lightnings_log_step(tmp_path):
    trainer = pl.Trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    loop = trainer.fit_loop.epoch_loop
    before = loop._batches_that_stepped
    adapters.count_stepped_batches(trainer, 3)
    assert loop._batches_that_stepped == before + 3
    # Lightning logs at, and saves in checkpoints, this very counter
    assert loop.state_dict()["state_dict"]["_batches_that_stepped"] == before + 3


def test_a_module_knows_whether_it_has_a_trainer():
    module = pl.LightningModule()
    assert not adapters.has_trainer(module)
    with pytest.raises(RuntimeError):
        module.trainer  # noqa: B018  what has_trainer avoids
    trainer = pl.Trainer(logger=False, enable_progress_bar=False)
    module.trainer = trainer
    assert adapters.has_trainer(module)


def test_the_tensorboard_writer_takes_summaries(tmp_path):
    from torch.utils.tensorboard.summary import hparams

    logger = TensorBoardLogger(tmp_path, name="tb", version="")
    writer = adapters.tensorboard_file_writer(logger.experiment)
    for summary in hparams({"lr": 0.1}, {"test/acc": 0.5}):
        writer.add_summary(summary)
    logger.experiment.flush()
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_a_target_is_located_as_instantiate_does_and_says_nothing_when_it_fails(caplog):
    assert adapters.locate("torch.nn.Linear") is torch.nn.Linear
    assert adapters.locate("fashion_lab.models.cnn.cnn").__name__ == "cnn"
    with pytest.raises(ImportError, match="no_such_pkg"):
        adapters.locate("no_such_pkg.Net")
    assert not caplog.records


def test_a_trial_asked_in_one_process_is_live_in_another_by_its_number(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=storage, direction="maximize").ask()  # trial 0
    asked = optuna.create_study(study_name="s", storage=storage, load_if_exists=True).ask()
    elsewhere = optuna.load_study(study_name="s", storage=storage)  # as a job process does
    trial = adapters.optuna_trial(elsewhere, asked.number)
    assert trial.number == asked.number == 1
    trial.report(0.5, 0)
    assert optuna.load_study(study_name="s", storage=storage).trials[1].intermediate_values == {
        0: 0.5
    }


def test_the_cpu_flags_are_torchs_own_checks():
    flags = [
        getattr(torch.cpu, n, None) for n in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    ]
    assert all(callable(f) for f in flags), "torch renamed its CPU checks: cpu_bf16_flags is False"
    assert adapters.cpu_bf16_flags() == any(bool(f()) for f in flags)


def test_a_compiled_networks_keys_are_the_plain_ones():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    compiled = torch.compile(net)
    keys = {adapters.uncompiled_key(k) for k in compiled.state_dict()}
    assert keys == set(net.state_dict())


def test_submitits_signal_handler_says_whether_the_job_timed_out(monkeypatch):
    from submitit.core.job_environment import SignalHandler

    assert callable(SignalHandler.has_timed_out)
    handler = SignalHandler.__new__(SignalHandler)
    monkeypatch.setattr(SignalHandler, "has_timed_out", lambda self: True)
    assert adapters.submitit_timed_out(handler.checkpoint_and_try_requeue) is True


def test_submitits_local_controllers_start_with_ctrl_c_ignored(monkeypatch):
    import signal

    from submitit.local import local

    seen = []
    start = lambda *a, **k: seen.append(signal.getsignal(signal.SIGINT))  # noqa: E731
    monkeypatch.setattr(local, "start_controller", start)
    adapters.submitit_controllers_ignore_ctrl_c()
    adapters.submitit_controllers_ignore_ctrl_c()  # once: not wrapped twice
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        local.start_controller()
        assert seen == [signal.SIG_IGN]  # while it starts: the controller inherits that
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # then back
    finally:
        signal.signal(signal.SIGINT, previous)


def test_hydras_basic_launcher_is_told_from_the_others():
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher
    from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher

    assert adapters.in_this_process(BasicLauncher())
    assert not adapters.in_this_process(JoblibLauncher())
