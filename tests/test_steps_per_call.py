"""module.steps_per_call: several optimizer steps per Lightning step, the same training."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch
from conftest import compose_run, run_cli, tiny_overrides

from fashion_lab.errors import UserError
from fashion_lab.train import build_datamodule, build_model, build_module, build_trainer


def _fit(tiny_data, tmp_path, name: str, *extra: str):
    overrides = [
        *tiny_overrides(tiny_data, tmp_path / name),
        "trainer.max_epochs=2",
        "trainer.precision=32-true",
        "trainer.num_sanity_val_steps=0",
        *extra,
    ]
    cfg = compose_run(overrides, tmp_path / name)
    pl.seed_everything(0, verbose=False)
    module = build_module(cfg, build_model(cfg))  # dropout draws follow the same order
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=build_datamodule(cfg))
    return module, trainer


@pytest.mark.parametrize("extra", [(), ("trainer.gradient_clip_val=0.05",)])
def test_four_steps_per_call_train_exactly_like_one(tiny_data, tmp_path, extra):
    # 512 training images, batch 64: 8 optimizer steps an epoch either way
    one, one_trainer = _fit(tiny_data, tmp_path, "one", *extra)
    four, four_trainer = _fit(tiny_data, tmp_path, "four", "module.steps_per_call=4", *extra)
    assert not four.automatic_optimization
    assert one_trainer.num_training_batches == 8 and four_trainer.num_training_batches == 2
    assert one_trainer.global_step == four_trainer.global_step == 16
    lr = [t.optimizers[0].param_groups[0]["lr"] for t in (one_trainer, four_trainer)]
    assert lr[0] == pytest.approx(lr[1]), "the schedule ran over the same number of steps"
    pairs = zip(one.net.state_dict().items(), four.net.state_dict().values(), strict=True)
    for (name, a), b in pairs:
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
    for key in ("train/loss", "train/acc", "val/acc"):
        a, b = one_trainer.callback_metrics[key], four_trainer.callback_metrics[key]
        assert torch.allclose(a, b, atol=1e-5), key


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


def test_the_command_line_run_records_every_image(tiny_data, tmp_path):
    done = run_cli(*tiny_overrides(tiny_data, tmp_path), "module.steps_per_call=4")
    assert done.returncode == 0, done.stderr[-3000:]
    [path] = tmp_path.rglob("results.json")
    results = json.loads(path.read_text())
    assert results["status"] == "completed" and results["test_acc"] > 0.5
    assert results["train_images_per_s"] > 0
