"""Receptive-field arithmetic against hand-computed cases, the layer table, and inspect."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_cli, tiny_overrides
from torch import nn

from fashion_lab import receptive
from fashion_lab.models import create_model


@pytest.mark.parametrize(
    ("dilations", "size"),
    [([1], 3), ([1, 1], 5), ([1, 2, 4, 8], 31), ([1, 2, 5], 17), ([2, 2, 2, 2], 17)],
)
def test_receptive_field_of_3x3_chains(dilations, size):
    # each 3x3 layer at dilation d adds 2d pixels: 1 + 2 * sum(d)
    assert receptive.receptive_field([3] * len(dilations), dilations) == size


def test_strides_multiply_what_later_layers_add():
    # conv3 (1 -> 3), pool2 stride 2 (3 -> 4, jump 2), conv3 (4 + 2*2 = 8)
    assert receptive.receptive_field([3, 2, 3], [1, 1, 1], [1, 2, 1]) == 8


def test_constant_dilation_leaves_gridding_holes():
    counts = receptive.path_counts_1d([3] * 4, [2, 2, 2, 2])
    assert len(counts) == 17
    assert (counts[1::2] == 0).all(), "odd offsets are never reached"
    assert counts[::2].tolist() == [1, 4, 10, 16, 19, 16, 10, 4, 1]


@pytest.mark.parametrize("dilations", [[1, 2, 5], [1, 2, 4, 8], [1, 2, 4, 8, 4, 2, 1]])
def test_schedules_starting_at_one_without_common_factor_have_no_holes(dilations):
    counts = receptive.path_counts_1d([3] * len(dilations), dilations)
    assert (counts > 0).all()
    assert counts.sum() == 3 ** len(dilations)


def _chain(dilations: list[int]) -> nn.Sequential:
    return nn.Sequential(*(nn.Conv2d(1, 1, 3, padding=d, dilation=d) for d in dilations))


def test_the_2d_map_of_a_plain_chain_is_the_outer_product_of_the_1d_counts():
    net = _chain([2, 2, 2, 2])
    maps = receptive.theoretical_rf(net, ["3"], input_size=29)
    counts = receptive.path_counts_1d([3] * 4, [2, 2, 2, 2])
    expected = np.zeros((29, 29))
    expected[6:23, 6:23] = np.outer(counts, counts)
    assert np.array_equal(maps["3"], expected)
    assert receptive.holes(maps["3"]) == 17 * 17 - 9 * 9


def test_layer_table_follows_residual_branches():
    rows = {r.name: r for r in receptive.layer_table(create_model("resnet", width=8))}
    assert rows["stem.0"].rf == 3
    assert rows["features.3.conv2"].rf == 15  # 3 + six 3x3 layers at stride 1
    assert rows["features.4.conv1"].rf == 17 and rows["features.4.conv1"].stride == 2
    assert rows["features.4.conv2"].rf == 21  # jump 2 after the strided conv
    assert rows["features.5.conv1"].rf == 25  # the 1x1 shortcut did not count twice


def test_summary_of_the_dilated_presets():
    v2 = receptive.summary(create_model("dilated_v2"))
    assert v2["params"] == sum(p.numel() for p in create_model("dilated_v2").parameters())
    rows = receptive.layer_table(create_model("dilated_v2"))
    stage1 = [r for r in rows if r.shape[1:] == (28, 28) and r.kind == "Conv2d"]
    assert [r.dilation for r in stage1] == [1, 1, 2, 4, 8]
    assert stage1[-1].rf == 33  # the stem's 3 plus the schedule's 30
    assert v2["macs"] == sum(r.macs for r in rows) > 0


def test_effective_rf_is_a_normalized_gradient_map():
    torch.manual_seed(0)
    net = create_model("dilated_v2", width=4)
    layers = receptive.stage_ends(net)
    maps = receptive.effective_rf(net, layers, torch.randn(4, 1, 28, 28))
    assert list(maps) == layers
    for m in maps.values():
        assert m.shape == (28, 28) and m.max() == pytest.approx(1.0) and m.min() >= 0


@pytest.mark.slow
def test_inspect_prints_the_table_and_saves_both_figures(tiny_data, tmp_path):
    data = [o for o in tiny_overrides(tiny_data, tmp_path) if o.startswith("data.")]
    done = run_cli(
        "model=dilated_v2",
        "model.width=8",
        *data,
        "--out",
        str(tmp_path / "inspect"),
        "--images",
        "16",
        module="fashion_lab.inspect",
    )
    assert done.returncode == 0, done.stderr
    assert "features.4.conv" in done.stdout and "total" in done.stdout
    assert (tmp_path / "inspect" / "theoretical_rf.png").stat().st_size > 10_000
    assert (tmp_path / "inspect" / "effective_rf.png").stat().st_size > 10_000


@pytest.mark.slow
def test_inspect_rejects_an_unknown_model_in_one_sentence(tmp_path):
    done = run_cli("model=nope", module="fashion_lab.inspect")
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "Error: In 'config': Could not find 'model/nope'; Available options in 'model': cnn,"
        )
    )


@pytest.mark.slow
def test_inspect_rejects_an_unknown_key_in_one_sentence():
    done = run_cli("model.dilations=[1,2]", module="fashion_lab.inspect")  # cnn has none
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Could not override 'model.dilations'. To append to your config")
