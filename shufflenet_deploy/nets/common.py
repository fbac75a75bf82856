"""Pieces shared by the ShuffleNet families, written to export cleanly.

Every exporter we target (torch.export, the TorchScript tracer, pnnx,
coremltools) must see the channel shuffle as a fixed pattern, so shapes are
never computed from tensor values: channel counts are Python ints stored on
the module, and batch/height/width stay symbolic.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn


def channel_shuffle(x: Tensor, groups: int, channels: int) -> Tensor:
    """Interleave ``groups`` channel groups: view as (groups, channels/groups), transpose, flatten.

    ``channels`` is passed in rather than read from ``x.size()``: a traced
    ``c // g`` on a size becomes a tensor expression that coremltools cannot
    fold under numpy 2, and a reshape with two ``-1`` dims is ambiguous.
    """
    batch, _, height, width = x.shape
    x = x.reshape(batch, groups, channels // groups, height, width)
    return x.transpose(1, 2).reshape(batch, channels, height, width)


def global_avg_pool(x: Tensor) -> Tensor:
    """Mean over H and W, so any input size works (no fixed ``AvgPool2d(7)``)."""
    return x.mean((2, 3))


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    groups: int = 1,
    relu: bool = True,
) -> list[nn.Module]:
    """Conv (no bias) + BatchNorm (+ ReLU) as a flat list, so Sequential indices match published checkpoints."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class ShuffleNet(Protocol):
    """What every family's network offers the registry, weight loader and summaries."""

    num_classes: int
    #: ``state_dict`` key of the final linear weight; its rows are the classes.
    classifier_key: str

    def units(self) -> list[tuple[str, nn.Module]]:
        """The building blocks in execution order, named as in ``state_dict``."""
