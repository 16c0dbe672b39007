"""The zoo: shapes, parameter counts, schedules and their errors."""

from __future__ import annotations

import copy

import pytest
import torch
from omegaconf import OmegaConf

from fashion_lab import build
from fashion_lab.config import CONFIG_DIR
from fashion_lab.errors import UserError
from fashion_lab.models import create_model, list_models
from fashion_lab.models.dilated import ConvBNReLU, DilatedNet, as_stages, kernel_span
from fashion_lab.models.registry import builder

PRESETS = ["cnn", "plain", "dilated_v1", "dilated_v2", "dilated_hdc", "dilated_degrid", "resnet"]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_maps_a_batch_to_ten_logits(name):
    net = create_model(name)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("name", PRESETS)
def test_python_defaults_match_the_preset_configs(name):
    """`create_model(name)` and `model=name` build the same network."""
    options = {k: v for k, v in OmegaConf.load(CONFIG_DIR / "model" / f"{name}.yaml").items()}
    options.pop("_target_")
    a, b = create_model(name), create_model(name, **options)
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    assert str(a) == str(b)


def test_cnn_matches_the_source_readme():
    """The source's layers, each block pooling before its ReLU: the same outputs and gradients
    as Conv-ReLU-MaxPool, bit for bit."""
    net = create_model("cnn")
    assert sum(p.numel() for p in net.parameters()) == 225_034
    assert [type(m).__name__ for m in net][:6] == ["Conv2d", "MaxPool2d", "ReLU"] * 2
    keras_order = copy.deepcopy(net)
    for i in (1, 4):  # swap back to Conv-ReLU-MaxPool; the parameters keep their indices
        keras_order[i], keras_order[i + 1] = keras_order[i + 1], keras_order[i]
    assert type(keras_order[1]).__name__ == "ReLU"
    x = torch.randn(16, 1, 28, 28)
    for model in (net, keras_order):
        model.eval()
        model(x).square().sum().backward()
    assert torch.equal(net(x), keras_order(x))
    for a, b in zip(net.parameters(), keras_order.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)


@pytest.mark.parametrize(
    ("name", "schedule"),
    [
        ("plain", [1, 1, 1, 1]),
        ("dilated_v1", [2, 2, 2, 2]),
        ("dilated_v2", [1, 2, 4, 8]),
        ("dilated_hdc", [1, 2, 5, 1, 2, 5]),
        ("dilated_degrid", [1, 2, 4, 8, 4, 2, 1]),
    ],
)
def test_dilated_presets_differ_only_in_the_full_resolution_schedule(name, schedule):
    net = create_model(name)
    convs = [m for m in net.modules() if isinstance(m, ConvBNReLU)][1:]  # after the stem
    dilations = [*schedule, 1, 1, 1, 1]  # the two plain stages every preset shares
    assert [c.conv.dilation[0] for c in convs] == dilations
    assert [c.conv.padding[0] for c in convs] == dilations, "padding follows dilation"
    assert net.features(torch.randn(1, 1, 28, 28)).shape == (1, 128, 7, 7)
    assert sum(p.numel() for p in net.parameters()) <= 500_000


def test_dilated_layers_keep_spatial_size():
    net = DilatedNet(dilations=[1, 2, 4, 8, 4, 2, 1])
    x = torch.randn(2, 1, 28, 28)
    for layer in net.features:
        x = layer(x)
        assert x.shape[-2:] == (28, 28)


def test_stages_downsample_and_widen():
    net = DilatedNet(dilations=[[1, 2], [1, 2]], width=8)
    out = net.features(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 16, 14, 14)


def test_residual_layers_add_their_input():
    layer = ConvBNReLU(4, 4, dilation=2, residual=True)
    torch.nn.init.zeros_(layer.conv.weight)
    torch.nn.init.zeros_(layer.bn.bias)
    x = torch.rand(2, 4, 8, 8)
    assert torch.allclose(layer(x), x)


@pytest.mark.parametrize("dilations", [[], [0, 1], [-1], [1.5], ["2"], [True]])
def test_bad_schedules_are_rejected_with_an_example(dilations):
    with pytest.raises(ValueError, match=r"e.g. \[1, 2, 4, 8\]"):
        DilatedNet(dilations=dilations)
    # the one place that builds networks names the config key and the override to type
    with pytest.raises(UserError, match=r"non-empty list.*; change model.dilations="):
        build.network({"_target_": "fashion_lab.models.dilated.DilatedNet", "dilations": dilations})


def test_dilation_too_large_for_the_feature_map():
    assert kernel_span(13) == 27 and kernel_span(14) == 29
    DilatedNet(dilations=[13])
    with pytest.raises(ValueError, match="span 29 pixels, more than the 28x28"):
        DilatedNet(dilations=[14])
    with pytest.raises(ValueError, match="14x14 feature map of stage 2"):
        DilatedNet(dilations=[[1], [7]])


def test_as_stages():
    assert as_stages([1, 2]) == [[1, 2]]
    assert as_stages([[1], [2, 3]]) == [[1], [2, 3]]


def test_registry_lists_and_rejects():
    assert {"cnn", "dilated_v1", "dilated_v2"} <= set(list_models())
    assert list_models("dilated_v*") == ["dilated_v1", "dilated_v2"]
    with pytest.raises(KeyError, match="unknown model 'resnet9000'; the zoo has: cnn"):
        create_model("resnet9000")
    with pytest.raises(TypeError, match="unexpected keyword argument 'depth'"):
        create_model("dilated_v2", depth=3)
    # a checkpoint of fashion_lab 0.1 names its zoo model: said with the config key
    with pytest.raises(UserError, match="unknown model 'resnet9000'"):
        build.network({"name": "resnet9000"})


def test_resnet20_has_the_layout_of_he_et_al():
    net = create_model("resnet", width=16)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 19  # + the linear head: 20 weighted layers
    assert 270_000 < sum(p.numel() for p in net.parameters()) < 275_000
    assert net.features(torch.randn(1, 1, 28, 28)).shape == (1, 64, 7, 7)


def test_resnet_can_replace_strides_with_dilation_like_torchvision():
    net = create_model("resnet", width=8, replace_stride_with_dilation=[True, True])
    assert net.features(torch.randn(1, 1, 28, 28)).shape == (1, 32, 28, 28)
    blocks = [m for m in net.features if hasattr(m, "conv1")]
    # stage 2: first block at the previous dilation, then 2; stage 3: first at 2, then 4
    assert [b.conv1.dilation[0] for b in blocks] == [1, 1, 1, 1, 2, 2, 2, 4, 4]
    assert all(b.conv1.stride == (1, 1) for b in blocks)


@pytest.mark.parametrize("depth", [19, 2])
def test_resnet_rejects_a_depth_that_is_not_6n_plus_2(depth):
    with pytest.raises(ValueError, match=r"6n \+ 2"):
        create_model("resnet", depth=depth)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("resnet", {"depth": "20"}, "model.depth must be an integer, got '20'"),
        (
            "resnet",
            {"width": 0},
            r"\(width must be a positive integer, got 0\); change model.width=0",
        ),
        ("dilated_v2", {"width": -4}, r"positive integer, got -4\); change model.width=-4"),
        (
            "cnn",
            {"hidden": 0},
            r"\(hidden must be a positive integer, got 0\); change model.hidden",
        ),
        ("cnn", {"dropout": "abc"}, "model.dropout must be a number, got 'abc'"),
        ("dilated_hdc", {"residual": "maybe"}, "model.residual must be true or false"),
        ("resnet", {"replace_stride_with_dilation": "maybe"}, "two booleans, .* got 'maybe'"),
    ],
)
def test_options_of_the_wrong_type_or_size_are_one_sentence(name, options, message):
    # a zero width built, and failed only at the first forward pass, inside torch
    target = f"{builder(name).__module__}.{name}"
    with pytest.raises(UserError, match=message):
        build.network({"_target_": target, **options})
