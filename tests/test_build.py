"""build.py: where config values meet constructors; each refusal names the key to change."""

from __future__ import annotations

import pytest
import torch
from conftest import compose_run, tiny_overrides, untrained_checkpoint

from fashion_lab import build, plan
from fashion_lab.errors import UserError


def test_a_builders_options_are_checked_against_the_class_it_returns():
    # resnet(**kwargs) -> ResNet: the class's signature types the options
    takers = build.option_takers(build.locate("fashion_lab.models.resnet.resnet"))
    assert [t.__name__ for t in takers] == ["resnet", "ResNet"]
    with pytest.raises(UserError, match=r"model\.depth must be an integer, got '20'"):
        build.network({"_target_": "fashion_lab.models.resnet.resnet", "depth": "20"})


def test_an_option_the_constructor_does_not_take_is_dropped_with_a_tilde():
    with pytest.raises(UserError, match=r"drop the option with ~model.nope"):
        build.network({"_target_": "fashion_lab.models.cnn.cnn", "nope": 1})


def test_a_networks_own_refusal_gets_the_key_and_the_override():
    with pytest.raises(
        UserError, match=r"\(width must be a positive integer, got 0\); change model.width=0"
    ):
        build.network(
            {"_target_": "fashion_lab.models.dilated.DilatedNet", "dilations": [1], "width": 0}
        )


def test_what_is_not_a_network_is_refused():
    with pytest.raises(UserError, match=r"built a dict, not a torch nn\.Module"):
        build.network({"_target_": "builtins.dict"})


def test_a_datamodule_given_the_data_serves_it_without_reading(tiny_data, tmp_path):
    cfg = compose_run(tiny_overrides(tiny_data, tmp_path), tmp_path)
    splits = build.datamodule(cfg).loaded()
    cfg.data.root = str(tmp_path / "nowhere")  # nothing to read there
    cfg.data.system_dir = None
    cfg.data.download = False
    served = build.datamodule(cfg, steps_per_call=2, splits=splits)
    served.setup()
    assert served.split("train")[0] is splits.tensors["train"][0]
    assert (served.mean, served.std, served.steps_per_call) == (splits.mean, splits.std, 2)


def test_the_trainer_leaves_clipping_to_a_module_that_steps_several_times_per_call(
    tiny_data, tmp_path
):
    cfg = compose_run(
        [*tiny_overrides(tiny_data, tmp_path), "trainer.gradient_clip_val=1.0"], tmp_path
    )
    settings = plan.settings(cfg)
    several = build.Settings({**settings.trainer}, steps_per_call=4, channels_last=False)
    assert build.trainer(cfg, several).gradient_clip_val is None
    module = build.module(cfg, build.network(cfg.model), several, {})
    assert module.gradient_clip_val == 1.0 and module.steps_per_call == 4
    one = build.Settings({**settings.trainer}, steps_per_call=1, channels_last=False)
    assert build.trainer(cfg, one).gradient_clip_val == 1.0


def test_an_option_lightning_does_not_take_is_dropped_with_a_tilde(tiny_data, tmp_path):
    cfg = compose_run(tiny_overrides(tiny_data, tmp_path), tmp_path)
    settings = plan.settings(cfg)
    wrong = build.Settings({**settings.trainer, "no_such": 1}, steps_per_call=1)
    with pytest.raises(UserError, match=r"drop it with ~trainer.no_such"):
        build.trainer(cfg, wrong)


def test_a_checkpoints_network_is_rebuilt_with_its_weights(tiny_data, tmp_path):
    cfg = compose_run(tiny_overrides(tiny_data, tmp_path), tmp_path)
    saved = untrained_checkpoint(cfg)
    torch.save(saved, tmp_path / "a.ckpt")
    net, stored, _ = build.restore_network(tmp_path / "a.ckpt")
    assert stored.model == cfg.model
    for key, value in net.state_dict().items():
        assert torch.equal(value, saved["state_dict"][f"net.{key}"])
