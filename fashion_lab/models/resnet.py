"""A ResNet-20-style reference network for 28x28 inputs (He et al. 2016, CIFAR layout)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fashion_lab.models.dilated import check_span, classifier_head
from fashion_lab.models.registry import check_positive, register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut (1x1 conv-BN where the shape changes)."""

    def __init__(self, cin: int, cout: int, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem, three stages of basic blocks (width, 2x, 4x channels), global pooling, linear head.

    Args:
        depth: 6n + 2 layers (20: three blocks per stage).
        width: channels of the stem and the first stage.
        replace_stride_with_dilation: for stages 2 and 3, keep the resolution and double the
            dilation instead of striding (torchvision's option of the same name).
        dropout: dropout before the linear head.
        num_classes: output logits.
        in_channels: input channels.
        input_size: input height and width, used to reject dilations too large for a stage.

    Raises:
        ValueError: the depth is not 6n + 2, or the option list is not two booleans.
    """

    def __init__(
        self,
        *,
        depth: int = 20,
        width: int = 32,
        replace_stride_with_dilation: Sequence[bool] = (False, False),
        dropout: float = 0.0,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 28,
    ) -> None:
        super().__init__()
        replace = check_options(depth, width, replace_stride_with_dilation)
        blocks = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        channels, dilation, size = width, 1, input_size
        for stage, dilate in enumerate([False, *replace]):
            cout = width * 2**stage
            stride = 1 if stage == 0 else 2
            previous = dilation
            if dilate:
                dilation, stride = dilation * stride, 1
            else:
                size = (size + 1) // stride
            check_span(dilation, size, stage + 1, "replace fewer strides with dilation")
            for i in range(blocks):
                layers.append(
                    BasicBlock(
                        channels,
                        cout,
                        stride=stride if i == 0 else 1,
                        dilation=previous if i == 0 else dilation,
                    )
                )
                channels = cout
        self.features = nn.Sequential(self.stem, *layers)
        self.head = classifier_head(channels, dropout, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for block in layers:  # each residual branch starts as the identity (Goyal et al. 2017)
            nn.init.zeros_(block.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model
def resnet(**kwargs) -> ResNet:
    """ResNet-20-style reference (its depth and width, dilation instead of strides)."""
    return ResNet(**kwargs)


def check_options(depth: object, width: object, replace: object) -> list[bool]:
    """ResNet's options checked before any layer is made; `replace` as a list.

    Raises:
        ValueError: the depth is not 6n + 2, the width not positive, or `replace` not two
            booleans.
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110), got {depth!r}; e.g. 20"
        )
    check_positive("width", width)
    if (
        isinstance(replace, str)
        or len(replace) != 2
        or not all(isinstance(r, bool) for r in replace)
    ):
        raise ValueError(
            "replace_stride_with_dilation must be two booleans, one for each of stages 2 and 3, "
            f"got {replace!r}; e.g. [False, True]"
        )
    return list(replace)
