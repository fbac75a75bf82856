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


class Truncated(nn.Module):
    """The network's first ``count`` units (``units()``), as a plain tensor-in, tensor-out model.

    Every family runs its units one after the other, pooling globally before
    the classifier; so does this, which lets ``verify --locate`` export any
    prefix of the network exactly as the whole network is exported.
    """

    def __init__(self, network: nn.Module, count: int):
        super().__init__()
        named = network.units()
        if not 1 <= count <= len(named):
            raise ValueError(f"count must be 1..{len(named)}, got {count}")
        self.names = [name for name, _ in named[:count]]
        self.blocks = nn.ModuleList(unit for _, unit in named[:count])

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            if x.dim() == 4 and _is_classifier(block):
                x = global_avg_pool(x)
            x = block(x)
        return x


def _is_classifier(block: nn.Module) -> bool:
    first = next(iter(block.children()), block) if isinstance(block, nn.Sequential) else block
    return isinstance(first, nn.Linear)
