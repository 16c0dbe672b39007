"""Receptive fields of the zoo's networks: arithmetic, a per-layer table, and the two maps.

- `receptive_field` and `path_counts_1d`: the arithmetic of a chain of convolutions.
- `layer_table`: every conv, pool and linear layer of any network (traced with torch.fx, so
  residual branches are followed exactly) with its output shape, dilation, receptive field,
  parameters and multiply-adds.
- `theoretical_rf`: which input pixels reach the centre unit of a feature map, and through how
  many paths (the network made linear with unit weights); gridding holes are zeros.
- `effective_rf`: the gradient of the centre unit w.r.t. the input, averaged over real images
  (Luo et al. 2016), for the network's actual weights.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

SPATIAL = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d)
ROWS = (*SPATIAL, nn.Linear, nn.AdaptiveAvgPool2d)


def receptive_field(
    kernels: Sequence[int], dilations: Sequence[int], strides: Sequence[int] | None = None
) -> int:
    """Receptive field (pixels along one side) of a chain of convolutions."""
    strides = strides or [1] * len(kernels)
    size, jump = 1, 1
    for k, d, s in zip(kernels, dilations, strides, strict=True):
        size += (k - 1) * d * jump
        jump *= s
    return size


def path_counts_1d(
    kernels: Sequence[int], dilations: Sequence[int], strides: Sequence[int] | None = None
) -> np.ndarray:
    """Along one axis: how many paths lead from each input pixel of the receptive field to the
    output unit of a chain of convolutions. Zeros inside are gridding holes."""
    strides = strides or [1] * len(kernels)
    counts = np.ones(1, dtype=np.int64)
    for k, d, s in reversed(list(zip(kernels, dilations, strides, strict=True))):
        wider = np.zeros(s * (len(counts) - 1) + 1 + (k - 1) * d, dtype=np.int64)
        for tap in range(k):
            wider[tap * d : tap * d + s * (len(counts) - 1) + 1 : s] += counts
        counts = wider
    return counts


def _pair(value) -> int:
    return value[0] if isinstance(value, tuple) else int(value)


@dataclass
class Layer:
    """One row of the table."""

    name: str
    kind: str
    shape: tuple[int, ...]
    kernel: int
    stride: int
    dilation: int
    rf: int
    params: int
    macs: int


def _macs(module: nn.Module, shape: tuple[int, ...]) -> int:
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1]
        return int(np.prod(shape[1:])) * k * module.in_channels // module.groups
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0


def layer_table(net: nn.Module, input_size: int = 28, in_channels: int = 1) -> list[Layer]:
    """Conv, pooling and linear layers in execution order: output shape, receptive field (in
    input pixels, unclipped by the image border), the layer's own parameters and its
    multiply-adds per image."""
    graph = fx.symbolic_trace(net)
    ShapeProp(graph).propagate(torch.zeros(1, in_channels, input_size, input_size))
    modules = dict(graph.named_modules())
    field: dict[fx.Node, tuple[int, int]] = {}  # node -> (receptive field, jump) in pixels
    rows = []
    for node in graph.graph.nodes:
        inputs = [field[a] for a in node.all_input_nodes if a in field]
        rf, jump = max(inputs) if inputs else (1, 1)
        module = modules.get(node.target) if node.op == "call_module" else None
        if isinstance(module, SPATIAL):
            k, s = _pair(module.kernel_size), _pair(module.stride)
            d = _pair(getattr(module, "dilation", 1))
            rf, jump = rf + (k - 1) * d * jump, jump * s
        field[node] = (rf, jump)
        if isinstance(module, ROWS):
            shape = tuple(node.meta["tensor_meta"].shape)
            rows.append(
                Layer(
                    name=str(node.target),
                    kind=type(module).__name__,
                    shape=shape[1:],
                    kernel=_pair(getattr(module, "kernel_size", 0)),
                    stride=_pair(getattr(module, "stride", 0)),
                    dilation=_pair(getattr(module, "dilation", 1)),
                    rf=rf,
                    params=sum(p.numel() for p in module.parameters()),
                    macs=_macs(module, shape),
                )
            )
    return rows


def summary(net: nn.Module, input_size: int = 28) -> dict[str, int]:
    """Parameters, multiply-adds per image and the last feature map's receptive field."""
    rows = layer_table(net, input_size)
    spatial = [r for r in rows if r.kind in {c.__name__ for c in SPATIAL}]
    return {
        "params": sum(p.numel() for p in net.parameters()),
        "macs": sum(r.macs for r in rows),
        "rf": spatial[-1].rf if spatial else 1,
    }


def stage_ends(net: nn.Module, input_size: int = 28) -> list[str]:
    """Names of the last conv layer at each resolution: where the maps are drawn."""
    ends: dict[tuple[int, ...], str] = {}
    for row in layer_table(net, input_size):
        if row.kind == "Conv2d" and row.kernel > 1:
            ends[row.shape[1:]] = row.name
    return list(ends.values())


def _centre_gradients(
    net: nn.Module, layers: Sequence[str], images: torch.Tensor
) -> dict[str, torch.Tensor]:
    """|d centre unit / d input| per layer (summed over channels), averaged over `images`."""
    out: dict[str, torch.Tensor] = {}
    maps: dict[str, torch.Tensor] = {}
    hooks = [
        net.get_submodule(name).register_forward_hook(
            lambda _m, _i, o, name=name: maps.__setitem__(name, o)
        )
        for name in layers
    ]
    try:
        for name in layers:
            x = images.clone().requires_grad_(True)
            net(x)
            fmap = maps[name]
            h, w = fmap.shape[-2:]
            (grad,) = torch.autograd.grad(fmap[:, :, h // 2, w // 2].sum(), x)
            out[name] = grad.abs().mean(dim=(0, 1))
    finally:
        for hook in hooks:
            hook.remove()
    return out


def linearized(net: nn.Module) -> nn.Module:
    """A copy of `net` in which a unit's value counts the paths from the input to it.

    Conv weights become 1/in_channels (every channel carries the same count), biases 0,
    BatchNorm and dropout the identity, max-pooling sum-pooling; fed positive inputs, every
    ReLU passes everything, so gradients of a unit w.r.t. the input are path counts.
    """
    copy_ = copy.deepcopy(net).double().eval()
    for parent in copy_.modules():
        for name, child in parent.named_children():
            if isinstance(child, (nn.BatchNorm2d, nn.Dropout)):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.LPPool2d(1, child.kernel_size, child.stride))
            elif isinstance(child, nn.Conv2d):
                with torch.no_grad():
                    child.weight.fill_(child.groups / child.in_channels)
                    if child.bias is not None:
                        child.bias.zero_()
    return copy_


def theoretical_rf(net: nn.Module, layers: Sequence[str], input_size: int = 28) -> dict:
    """Path counts from each input pixel to the centre unit of each layer's output."""
    ones = torch.ones(1, 1, input_size, input_size, dtype=torch.float64)
    maps = _centre_gradients(linearized(net), layers, ones)
    return {name: m.round().numpy() for name, m in maps.items()}


def effective_rf(net: nn.Module, layers: Sequence[str], images: torch.Tensor) -> dict:
    """Mean |gradient| of each layer's centre unit w.r.t. real input images, scaled to max 1."""
    was_training = net.training
    net.eval()
    try:
        maps = _centre_gradients(net, layers, images)
    finally:
        net.train(was_training)
    return {name: (m / m.max().clamp_min(1e-12)).numpy() for name, m in maps.items()}


def holes(counts: np.ndarray) -> int:
    """Pixels inside the bounding box of a path-count map that no path reaches."""
    reached = np.argwhere(counts > 0)
    if len(reached) == 0:
        return 0
    (top, left), (bottom, right) = reached.min(0), reached.max(0)
    return int((counts[top : bottom + 1, left : right + 1] == 0).sum())
