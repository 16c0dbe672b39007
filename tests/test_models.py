"""The zoo: shapes, parameter counts, schedules and their errors."""

from __future__ import annotations

import pytest
import torch

from fashion_lab.errors import UserError
from fashion_lab.models import create_model, list_models
from fashion_lab.models.dilated import ConvBNReLU, DilatedNet, as_stages, kernel_span


@pytest.mark.parametrize("name", ["cnn", "dilated_v1", "dilated_v2"])
def test_every_preset_maps_a_batch_to_ten_logits(name):
    net = create_model(name)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_cnn_matches_the_source_readme():
    net = create_model("cnn")
    assert sum(p.numel() for p in net.parameters()) == 225_034
    assert [type(m).__name__ for m in net][:6] == ["Conv2d", "ReLU", "MaxPool2d"] * 2


@pytest.mark.parametrize(
    ("name", "dilations"), [("dilated_v1", [2, 2, 2, 2]), ("dilated_v2", [1, 2, 4, 8])]
)
def test_dilated_presets_differ_only_in_schedule(name, dilations):
    net = create_model(name)
    convs = [m for m in net.modules() if isinstance(m, ConvBNReLU)][1:]  # after the stem
    assert [c.conv.dilation[0] for c in convs] == dilations
    assert [c.conv.padding[0] for c in convs] == dilations, "padding follows dilation"


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
    with pytest.raises(UserError, match=r"model.dilations=\[1,2,4,8\]"):
        DilatedNet(dilations=dilations)


def test_dilation_too_large_for_the_feature_map():
    assert kernel_span(13) == 27 and kernel_span(14) == 29
    DilatedNet(dilations=[13])
    with pytest.raises(UserError, match="span 29 pixels, more than the 28x28"):
        DilatedNet(dilations=[14])
    with pytest.raises(UserError, match="14x14 feature map of stage 2"):
        DilatedNet(dilations=[[1], [7]])


def test_as_stages():
    assert as_stages([1, 2]) == [[1, 2]]
    assert as_stages([[1], [2, 3]]) == [[1], [2, 3]]


def test_registry_lists_and_rejects():
    assert {"cnn", "dilated_v1", "dilated_v2"} <= set(list_models())
    assert list_models("dilated_v*") == ["dilated_v1", "dilated_v2"]
    with pytest.raises(UserError, match="Unknown model 'resnet9000'; choose one of: cnn"):
        create_model("resnet9000")
    with pytest.raises(UserError, match="has no option 'depth'"):
        create_model("dilated_v2", depth=3)
