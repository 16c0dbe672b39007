"""module.steps_per_call: several optimizer steps per Lightning step, the same training."""

from __future__ import annotations

import json
import math
import types

import pytest
import pytorch_lightning as pl
import torch
from conftest import build_run, compose_run, run_cli, tiny_overrides
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fashion_lab import plan, schema, speed
from fashion_lab.callbacks import RunRecorder, StepProgressBar
from fashion_lab.errors import UserError


def _fit(tiny_data, tmp_path, name: str, *extra: str, callbacks=(), ckpt_path=None):
    overrides = [
        *tiny_overrides(tiny_data, tmp_path / name),  # fp32 unless `extra` gives a precision
        "trainer.max_epochs=2",
        "trainer.num_sanity_val_steps=0",
        *extra,
    ]
    cfg = compose_run(overrides, tmp_path / name)
    pl.seed_everything(0, verbose=False)
    module, trainer, datamodule = build_run(cfg, callbacks)  # dropout draws in the same order
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return module, trainer


def _scalars(trainer: pl.Trainer) -> dict[str, list[tuple[int, float]]]:
    """Every scalar the run wrote to TensorBoard: tag -> [(step, value)]."""
    events = EventAccumulator(trainer.logger.log_dir)
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


@pytest.mark.parametrize(
    ("k", "extra"),
    [
        (4, ()),
        (4, ("trainer.gradient_clip_val=0.05",)),
        (3, ()),
        # bf16 autocast spans a whole call of several steps: no cast of a weight outlives a step
        (4, ("trainer.precision=bf16-mixed",)),
    ],
)
def test_several_steps_per_call_train_exactly_like_one(tiny_data, tmp_path, k, extra):
    # 512 training images, batch 64: 8 optimizer steps an epoch either way (k=3: the third
    # call of an epoch holds the two batches left)
    one, one_trainer = _fit(tiny_data, tmp_path, "one", "module.steps_per_call=1", *extra)
    four, four_trainer = _fit(tiny_data, tmp_path, "k", f"module.steps_per_call={k}", *extra)
    assert not four.automatic_optimization
    assert one_trainer.num_training_batches == 8
    assert four_trainer.num_training_batches == math.ceil(8 / k)
    assert one_trainer.global_step == four_trainer.global_step == 16
    lr = [t.optimizers[0].param_groups[0]["lr"] for t in (one_trainer, four_trainer)]
    assert lr[0] == pytest.approx(lr[1]), "the schedule ran over the same number of steps"
    pairs = zip(one.net.state_dict().items(), four.net.state_dict().values(), strict=True)
    for (name, a), b in pairs:
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
    for key in ("train/loss", "train/acc", "val/acc"):
        a, b = one_trainer.callback_metrics[key], four_trainer.callback_metrics[key]
        assert torch.allclose(a, b, atol=1e-5), key


class BackwardListener(pl.Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.calls.append("before")

    def on_after_backward(self, trainer, pl_module) -> None:
        self.calls.append("after")


def test_backward_hooks_run_for_each_step_when_something_listens(tiny_data, tmp_path):
    listener = BackwardListener()
    module, _ = _fit(tiny_data, tmp_path, "hooks", callbacks=[listener])
    assert not module.automatic_optimization and not module._plain_backward
    assert listener.calls == ["before", "after"] * 16, "both hooks for each optimizer step"


def test_backward_skips_hooks_nothing_listens_to(tiny_data, tmp_path, monkeypatch):
    # the configured callbacks (checkpoints, progress bar, the run's recorder) listen to none
    def lightning_path(self, loss, *args, **kwargs):
        raise AssertionError("the backward went through Lightning's hooks")

    monkeypatch.setattr(pl.LightningModule, "manual_backward", lightning_path)
    module, trainer = _fit(tiny_data, tmp_path, "plain", callbacks=[RunRecorder()])
    assert module._plain_backward and trainer.global_step == 16
    monkeypatch.undo()
    # a profiler (it times each hook) or a module overriding a hook takes Lightning's path
    profiled, _ = _fit(tiny_data, tmp_path, "profiled", "+trainer.profiler=simple")
    assert not profiled._plain_backward
    monkeypatch.setattr(type(module), "on_after_backward", lambda self: None)
    listening, _ = _fit(tiny_data, tmp_path, "listening")
    assert not listening._plain_backward


def test_groups_are_augmented_as_one_batch(tiny_data, tmp_path):
    augment = ("data.augment.crop_padding=2", "data.augment.hflip=0.5", "data.augment.erasing=0.5")
    _, trainer = _fit(tiny_data, tmp_path, "aug", "module.steps_per_call=3", *augment)
    assert trainer.global_step == 16
    assert float(trainer.callback_metrics["val/acc"]) > 0.5, "the synthetic classes are learnable"


@pytest.mark.parametrize("no_epoch_limit", ["trainer.max_epochs=null", "trainer.max_epochs=-1"])
def test_a_step_limit_without_an_epoch_limit_sizes_the_schedule(
    no_epoch_limit, tiny_data, tmp_path
):
    # the one-cycle schedule's length asked for the training batches before Lightning had loaded
    # them (AttributeError) when no epoch limit made max_steps the only end
    _, trainer = _fit(
        tiny_data,
        tmp_path,
        "steps",
        no_epoch_limit,
        "trainer.max_steps=5",
        "module.steps_per_call=2",
    )
    assert trainer.global_step == 5
    assert trainer.lr_scheduler_configs[0].scheduler.total_steps == 5


def test_max_steps_stops_inside_a_call(tiny_data, tmp_path):
    timed = RunRecorder()
    one, _ = _fit(
        tiny_data,
        tmp_path,
        "one",
        "trainer.max_steps=6",
        "module.steps_per_call=1",
        callbacks=[timed],
    )
    assert len(timed.train_seconds_per_epoch) == 1, "the epoch max_steps stopped is timed"
    assert timed.images_per_second > 0
    recorder = RunRecorder()
    four, trainer = _fit(
        tiny_data,
        tmp_path,
        "four",
        "trainer.max_steps=6",
        "module.steps_per_call=4",
        callbacks=[recorder],
    )
    assert trainer.global_step == 6
    assert recorder.train_images == 6 * 64, "the images/s count only the batches trained on"
    assert len(recorder.train_seconds_per_epoch) == 1
    for a, b in zip(one.net.parameters(), four.net.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


class StepLosses(pl.Callback):
    """The loss and learning rate of every optimizer step, in order (automatic optimization)."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def test_the_step_loss_is_written_at_its_own_step(tiny_data, tmp_path):
    # 8 steps an epoch, a log every 3: logs end on steps 3, 6, 9, ... across epochs, and the
    # value written at TensorBoard step s (0-based) is the loss (and learning rate) of step s,
    # not of an older one
    record = StepLosses()
    _, trainer = _fit(
        tiny_data,
        tmp_path,
        "one",
        "module.steps_per_call=1",
        "trainer.log_every_n_steps=3",
        callbacks=[record],
    )
    scalars = _scalars(trainer)
    for tag, values in (("train/loss_step", record.losses), ("train/lr", record.lrs)):
        assert [step for step, _ in scalars[tag]] == [2, 5, 8, 11, 14], tag
        for step, value in scalars[tag]:
            assert value == pytest.approx(values[step], rel=1e-5), (tag, step)


def test_logs_keep_the_optimizer_step_as_their_x_axis(tiny_data, tmp_path):
    runs = [
        _scalars(_fit(tiny_data, tmp_path, name, "trainer.log_every_n_steps=4", *extra)[1])
        for name, extra in (
            ("one", ("module.steps_per_call=1",)),
            ("four", ("module.steps_per_call=4",)),
        )
    ]
    assert runs[0].keys() == runs[1].keys()
    assert {"train/loss_step", "train/lr", "train/loss", "val/acc"} <= runs[0].keys()
    for tag, written in runs[0].items():
        steps = [step for step, _ in written]
        assert steps == [step for step, _ in runs[1][tag]], tag
        assert [v for _, v in written] == pytest.approx([v for _, v in runs[1][tag]], abs=1e-4)
    assert [s for s, _ in runs[0]["train/loss_step"]] == [3, 7, 11, 15]


class SaveAfterFirstEpoch(pl.Callback):
    """Saves a checkpoint where ModelCheckpoint does, after the first epoch's validation."""

    def __init__(self, path) -> None:
        self.path = path

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 0:
            trainer.save_checkpoint(self.path)


def test_a_resumed_run_keeps_counting_optimizer_steps(tiny_data, tmp_path):
    recipe = ("module.steps_per_call=4", "trainer.log_every_n_steps=4")
    saved = tmp_path / "epoch0.ckpt"
    _, trainer = _fit(tiny_data, tmp_path, "whole", *recipe, callbacks=[SaveAfterFirstEpoch(saved)])
    whole = _scalars(trainer)
    _, resumed = _fit(tiny_data, tmp_path, "resumed", *recipe, ckpt_path=saved)
    assert resumed.global_step == 16
    part = _scalars(resumed)  # the second epoch only
    for tag in ("train/loss_step", "train/lr", "train/loss", "val/acc"):
        assert [s for s, _ in part[tag]] == [s for s, _ in whole[tag]][-len(part[tag]) :], tag
        assert min(s for s, _ in part[tag]) >= 7, tag


def test_clipping_is_applied_by_the_module(tiny_data, tmp_path):
    free, _ = _fit(tiny_data, tmp_path, "free", "module.steps_per_call=4")
    clipped, _ = _fit(
        tiny_data, tmp_path, "clipped", "module.steps_per_call=4", "trainer.gradient_clip_val=0.05"
    )
    assert clipped.gradient_clip_val == 0.05
    weights = [list(m.net.parameters())[-2].detach() for m in (free, clipped)]
    assert not torch.allclose(*weights), "clipping changed the updates"


def test_accumulation_with_steps_per_call_is_one_sentence(tiny_data, tmp_path):
    with pytest.raises(UserError, match="accumulate_grad_batches does not combine"):
        _fit(
            tiny_data,
            tmp_path,
            "bad",
            "module.steps_per_call=2",
            "trainer.accumulate_grad_batches=2",
        )


@pytest.mark.slow
def test_the_command_line_run_records_every_image(tiny_data, tmp_path):
    done = run_cli(*tiny_overrides(tiny_data, tmp_path), "module.steps_per_call=4")
    assert done.returncode == 0, done.stderr[-3000:]
    [path] = tmp_path.rglob("results.json")
    results = json.loads(path.read_text())
    assert results["status"] == "completed" and results["test_acc"] > 0.5
    assert results["train_images_per_s"] > 0


MEASURED = 4
"""What null picks below: a 10 ms step, Lightning's cost per call 0.3 ms (1% of 4 steps)."""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((), MEASURED),
        (("module.steps_per_call=2",), 2),
        (("trainer=ddp",), 1),
        (("trainer.accumulate_grad_batches=2",), 1),
        (("trainer.limit_train_batches=5",), 1),
        (("trainer.limit_train_batches=0.5",), MEASURED),
        (("+trainer.val_check_interval=4",), 1),
    ],
)
def test_null_picks_grouping_only_where_it_changes_no_count(tmp_path, monkeypatch, extra, expected):
    monkeypatch.setenv(speed.CACHE_ENV, str(tmp_path / "speed.json"))
    monkeypatch.setattr(speed, "time_steps", lambda *args, **options: 128 / 0.010)
    monkeypatch.setattr(speed, "call_overhead_s", lambda device: 0.0003)
    cfg = compose_run(["trainer.accelerator=cpu", *extra], tmp_path)
    assert cfg.module.steps_per_call is None or extra
    assert plan.settings(cfg).steps_per_call == expected


@pytest.mark.parametrize("value", ["0", "auto", "1.5", "true"])
def test_a_bad_steps_per_call_is_one_sentence(tmp_path, value):
    # 0: out of the schema's range; the others: not an integer, which Hydra refuses composing
    sentence = (
        r"a positive integer, or null .*set it back with module.steps_per_call=null"
        r"|could not be converted to Integer"
    )
    with pytest.raises(UserError, match=sentence):
        schema.check(compose_run([f"module.steps_per_call={value}"], tmp_path))


class Bar(StepProgressBar):
    """Records what the bar would show after each training call: (completed, total)."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[tuple[int, int]] = []

    def _update(self, progress_bar_id, current: int, visible: bool = True, hard=False) -> None:
        if progress_bar_id is not None and progress_bar_id == self.train_progress_bar_id:
            self.shown.append((current, self.total_train_batches))


@pytest.mark.parametrize("k", [1, 3])
def test_the_progress_bar_counts_batches(tiny_data, tmp_path, k):
    bar = Bar()
    _fit(
        tiny_data,
        tmp_path,
        "bar",
        f"module.steps_per_call={k}",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=true",
        "~callbacks.progress_bar",
        callbacks=[bar],
    )
    # 8 batches an epoch: calls of 3, 3 and 2 batches at k=3
    expected = {1: list(range(1, 9)), 3: [3, 6, 8]}[k]
    assert bar.shown == [(n, 8) for n in expected]


def test_the_configured_progress_bar_redraws_a_few_times_a_second(tiny_data, tmp_path):
    # Lightning's default, 100 a second, redrew after every training call: 3.9% of a CPU run's
    # time in a terminal, against 0.9% at 5 (experiments/benchmark/progress_bar.py)
    overrides = [*tiny_overrides(tiny_data, tmp_path), "trainer.enable_progress_bar=true"]
    _, trainer, _ = build_run(compose_run(overrides, tmp_path))
    [bar] = [c for c in trainer.callbacks if isinstance(c, StepProgressBar)]
    assert 0 < bar.refresh_rate <= 10


def test_the_progress_bar_redraws_at_its_rate_where_lightning_would_after_every_call(
    monkeypatch,
):
    # in Jupyter Lightning redraws (progress.refresh) twice after every training call
    import pytorch_lightning.callbacks.progress.rich_progress as rich_progress

    monkeypatch.setattr(rich_progress, "_IS_INTERACTIVE", True)
    clock = iter([0.0, 0.05, 0.1, 0.19, 0.21, 0.3, 0.35, 0.42])
    monkeypatch.setattr(
        "fashion_lab.callbacks.time", types.SimpleNamespace(monotonic=lambda: next(clock))
    )
    bar = StepProgressBar(refresh_rate=5)
    redraws = []
    bar.progress = type("Progress", (), {"refresh": lambda self: redraws.append(True)})()
    for hard in (False, False, False, False, False, False, True, False):
        bar.refresh(hard=hard)
    # at 0.0 and 0.21 (0.2 s apart at most 5 a second), 0.35 (hard: always), 0.42 is too soon
    assert len(redraws) == 3


def _checkpoint(tiny_data, tmp_path, k: int):
    saved = tmp_path / f"epoch0-k{k}.ckpt"
    _, trainer = _fit(
        tiny_data,
        tmp_path,
        f"whole{k}",
        f"module.steps_per_call={k}",
        callbacks=[SaveAfterFirstEpoch(saved)],
    )
    return saved, trainer


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 4])
def test_a_resumed_run_groups_batches_as_its_checkpoint_did(tiny_data, tmp_path, k):
    # a GPU run (1) resumed on a CPU (4 by default), and the other way round: null takes the
    # checkpoint's value, and the run ends where the uninterrupted one did
    saved, whole = _checkpoint(tiny_data, tmp_path, k)
    done = run_cli(
        *tiny_overrides(tiny_data, tmp_path / "resumed"),
        "module.steps_per_call=null",
        f"ckpt_path={saved}",
        "test=false",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [path] = (tmp_path / "resumed").rglob("results.json")
    results = json.loads(path.read_text())
    assert results["status"] == "completed" and results["epochs"] == 2
    last = torch.load(path.parent / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == whole.global_step == 16
    config = torch.load(saved, weights_only=True)["fashion_lab_config"]
    assert config["module"]["steps_per_call"] == k  # the value null picked, stored


@pytest.mark.slow
def test_resuming_with_another_steps_per_call_is_one_sentence(tiny_data, tmp_path):
    saved, _ = _checkpoint(tiny_data, tmp_path, 4)
    done = run_cli(
        *tiny_overrides(tiny_data, tmp_path / "resumed"),
        f"ckpt_path={saved}",
        "module.steps_per_call=1",
    )
    assert done.returncode == 2
    assert (
        "Error: The checkpoint was trained with module.steps_per_call=4 and this run sets 1; "
        "resume with module.steps_per_call=4 (or null)." in done.stderr
    )
