"""One configurable dilated CNN; the presets differ only in their dilation schedule."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fashion_lab.models.registry import check_positive, register_model

KERNEL = 3


def kernel_span(dilation: int, kernel: int = KERNEL) -> int:
    """Pixels one side of a dilated kernel covers: (k - 1) * d + 1."""
    return (kernel - 1) * dilation + 1


def check_span(dilation: int, size: int, stage: int, advice: str) -> None:
    """Reject a dilation whose kernel spans more than the `size`x`size` map of `stage`.

    Raises:
        ValueError: one sentence ending with `advice`.
    """
    if kernel_span(dilation) > size:
        raise ValueError(
            f"dilation {dilation} makes the 3x3 kernel span {kernel_span(dilation)} pixels, "
            f"more than the {size}x{size} feature map of stage {stage}; {advice}."
        )


def classifier_head(channels: int, dropout: float, num_classes: int) -> nn.Sequential:
    """Global average pooling, dropout, linear layer: the head every zoo network ends with."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(channels, num_classes),
    )


def as_stages(dilations: Sequence[int] | Sequence[Sequence[int]]) -> list[list[int]]:
    """Normalize a schedule: a flat list is one stage, a list of lists is several.

    Raises:
        ValueError: the schedule is empty or holds anything but positive integers.
    """
    stages = [list(s) for s in dilations] if dilations and _is_list(dilations[0]) else [dilations]
    for stage in stages:
        if not stage or not all(_is_positive_int(d) for d in stage):
            raise ValueError(
                f"dilations must be a non-empty list of positive integers (or a list of such "
                f"lists, one per stage), got {list(dilations)!r}; e.g. [1, 2, 4, 8]"
            )
    return [list(stage) for stage in stages]


def _is_list(value) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class ConvBNReLU(nn.Module):
    """3x3 convolution (padding follows dilation, so size is kept), BatchNorm, ReLU.

    With `residual`, the input is added before the ReLU when the shapes match.
    """

    def __init__(self, cin: int, cout: int, *, dilation: int = 1, residual: bool = False) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Conv2d(cin, cout, KERNEL, padding=dilation, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.residual = residual and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn(self.conv(x))
        return torch.relu(out + x if self.residual else out)


class DilatedNet(nn.Module):
    """Stem, stages of dilated 3x3 conv layers, global average pooling, linear head.

    Args:
        dilations: one dilation per conv layer; a list of lists makes several stages.
        width: channels of the stem and the first stage.
        downsample: halve the resolution (2x2 max-pool) and double the width between stages.
        residual: add each layer's input to its output where the shapes match.
        dropout: dropout before the linear head.
        num_classes: output logits.
        in_channels: input channels.
        input_size: input height and width, used to reject dilations too large for a stage.

    Raises:
        ValueError: a dilation's kernel span exceeds the feature map it runs on.
    """

    def __init__(
        self,
        *,
        dilations: Sequence[int] | Sequence[Sequence[int]],
        width: int = 32,
        downsample: bool = True,
        residual: bool = True,
        dropout: float = 0.0,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 28,
    ) -> None:
        super().__init__()
        check_positive("width", width)
        self.stages = as_stages(dilations)
        layers: list[nn.Module] = [ConvBNReLU(in_channels, width)]
        channels, size = width, input_size
        for index, stage in enumerate(self.stages):
            cout = channels
            if index > 0 and downsample:
                layers.append(nn.MaxPool2d(2))
                size //= 2
                cout = channels * 2
            for d in stage:
                check_span(
                    d, size, index + 1, f"use dilations <= {(size - 1) // (KERNEL - 1)} there"
                )
                layers.append(ConvBNReLU(channels, cout, dilation=d, residual=residual))
                channels = cout
        self.features = nn.Sequential(*layers)
        self.head = classifier_head(channels, dropout, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model
def dilated(*, dilations: Sequence[int] | Sequence[Sequence[int]], **kwargs) -> DilatedNet:
    """A dilated CNN with any schedule (its `dilations`)."""
    return DilatedNet(dilations=dilations, **kwargs)


# Presets: the schedule of the full-resolution stage differs; the two stages after it (14x14 and
# 7x7, twice and four times the width) are the same plain pair of layers in every preset.
TAIL_STAGES = ([1, 1], [1, 1])


def _preset(stage1: Sequence[int]) -> list[list[int]]:
    return [list(stage1), *(list(s) for s in TAIL_STAGES)]


@register_model
def plain(*, dilations: Sequence = _preset([1, 1, 1, 1]), **kwargs) -> DilatedNet:
    """Every dilation 1: the presets' backbone without dilation, the control of their schedules."""
    return DilatedNet(dilations=dilations, **kwargs)


@register_model
def dilated_v1(*, dilations: Sequence = _preset([2, 2, 2, 2]), **kwargs) -> DilatedNet:
    """Constant dilation 2,2,2,2 at full resolution: the gridding-prone control."""
    return DilatedNet(dilations=dilations, **kwargs)


@register_model
def dilated_v2(*, dilations: Sequence = _preset([1, 2, 4, 8]), **kwargs) -> DilatedNet:
    """Exponential dilation 1,2,4,8 at full resolution (four 3x3 layers see 31x31)."""
    return DilatedNet(dilations=dilations, **kwargs)


@register_model
def dilated_hdc(*, dilations: Sequence = _preset([1, 2, 5, 1, 2, 5]), **kwargs) -> DilatedNet:
    """Hybrid dilated convolution (Wang et al. 2018): a sawtooth without common factors."""
    return DilatedNet(dilations=dilations, **kwargs)


@register_model
def dilated_degrid(*, dilations: Sequence = _preset([1, 2, 4, 8, 4, 2, 1]), **kwargs) -> DilatedNet:
    """Rising then falling dilation (Yu et al. 2017's degridding): 1,2,4,8,4,2,1."""
    return DilatedNet(dilations=dilations, **kwargs)
