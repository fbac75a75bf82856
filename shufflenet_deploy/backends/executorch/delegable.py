"""The export-time forms of the networks that XNNPACK takes whole: same values, other ops.

As written, the nets leave nodes to ExecuTorch's portable kernels (executorch
1.5.1's XNNPACK partitioner refuses them), and every such node also cuts the
graph into one more XNNPACK partition:

* ``x.chunk(2, 1)`` of each ShuffleNet V2 stride-1 unit is ``split_with_sizes_copy``, which XNNPACK has
  no config for: it becomes two static slices (``slice_copy``).
* the global average pool ``x.mean((2, 3))`` (keepdim False; "mean.dim only supports keepdim=True"):
  ``mean(keepdim=True)`` then a reshape.
* ShuffleNet V1's ``AvgPool2d(3, 2, padding=1)`` counts the zero padding in its averages, which XNNPACK
  cannot ("zero-padding in the averaging calculation is not supported"): an explicit zero pad, then an
  unpadded pool, divides by 9 everywhere just the same.
* the channel shuffle is delegated as written for a static batch; under a dynamic batch its reshapes
  must not carry the symbolic batch size ("Symbolic reshape is not supported"), so the batch is ``-1``.
* 8-bit pixel input (``--embed-preprocess``): the cast to float happens first, so the NHWC permute runs
  on floats in XNNPACK (it has no uint8 permute); the cast itself stays outside (XNNPACK converts no
  dtypes).  The BGR channel flip of the official V1 contract (``flip``, no XNNPACK kernel) is folded
  into the stem convolution's weights instead.

Nothing here edits the nets: the forms below share the network's parameters
(fp16 works on a copy) and give bit-identical eager outputs (a test checks
all 24 archs).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...modelio import PIXELS, Adapter
from ...nets.common import Truncated, _is_classifier
from ...nets.shufflenet_v1 import ShuffleV1Block
from ...nets.shufflenet_v2 import InvertedResidual
from ...tolerances import fold_batchnorm


def delegable(model: nn.Module, half: bool = False) -> nn.Module:
    """``model`` (a network, a ``Truncated`` part of one, or an ``Adapter`` around one) in XNNPACK's forms.

    ``half``: the network computes in fp16 behind fp32 inputs and outputs (see :func:`_in_half`).  Any
    other module is returned as it is; the export's delegation counts then say what XNNPACK did not take.
    """
    if isinstance(model, Adapter):
        return _adapter(model, half)
    network = _units(model)
    return _in_half(network) if half else network


def _units(model: nn.Module) -> nn.Module:
    if isinstance(model, Truncated):
        return _Units(list(model.blocks))
    if callable(getattr(model, "units", None)):  # every family's network (nets.common.ShuffleNet)
        return _Units([unit for _, unit in model.units()])
    return model


def _adapter(adapter: Adapter, half: bool) -> nn.Module:
    copied = copy.copy(adapter)  # shares the network and buffers; the dicts below are its own
    copied._modules, copied._buffers = dict(adapter._modules), dict(adapter._buffers)
    network = _units(adapter.network)
    if adapter.io.kind == PIXELS and adapter.bgr and isinstance(network, _Units) and _stem_conv(network) is not None:
        # bgr(x) * gain + offset == bgr(x * rgb_gain + rgb_offset): flip the per-channel constants, and let the
        # stem convolution read its input channels in RGB order.
        network = _rgb_stem(network)
        copied.bgr, copied.gain, copied.offset = False, adapter.gain.flip(1), adapter.offset.flip(1)
    copied.network = _in_half(network) if half else network
    return _FloatInput(copied) if adapter.io.kind == PIXELS else copied


def _stem_conv(network: _Units) -> nn.Conv2d | None:
    stem = network.blocks[0]
    first = stem[0] if isinstance(stem, nn.Sequential) and len(stem) else stem
    return first if isinstance(first, nn.Conv2d) and first.in_channels == 3 and first.groups == 1 else None


def _rgb_stem(network: _Units) -> _Units:
    conv = copy.deepcopy(_stem_conv(network))
    with torch.no_grad():
        conv.weight.copy_(conv.weight.flip(1))
    stem = network.blocks[0]
    network.blocks[0] = nn.Sequential(conv, *list(stem)[1:]) if isinstance(stem, nn.Sequential) else conv
    return network


def _in_half(network: nn.Module) -> nn.Module:
    """The network in fp16 up to its global pool; the pool and the classifier stay fp32.

    XNNPACK's fp16 kernels accumulate in fp16 (on x86 too, as on phones): over the classifier's
    1024 inputs that alone moved v2_x0_5's logits by 1% of their range, 6x the fp16 floor that
    verify allows 4x of, while every unit before it stayed within 4x.  The fp32 classifier costs
    about 1/40 of the network's multiply-adds, and the cast before it splits XNNPACK's graph in two.
    """
    if isinstance(network, _Units) and len(network.blocks) > 1 and _is_classifier(network.blocks[-1]):
        body = _HalfCompute(nn.Sequential(*network.blocks[:-1]))
        network.blocks = nn.ModuleList([body, network.blocks[-1]])
        return network
    return _HalfCompute(network)


class _FloatInput(nn.Module):
    """Casts 8-bit pixels to float before the adapter, whose layout change then runs in XNNPACK."""

    def __init__(self, adapter: nn.Module):
        super().__init__()
        self.adapter = adapter

    def forward(self, x: Tensor) -> Tensor:
        return self.adapter(x.to(torch.float32))  # the adapter's own cast is then a no-op


class _HalfCompute(nn.Module):
    """fp16 network behind fp32 input and output: what apps feed and read stays float32.

    BatchNorm is folded into the convolutions in fp32 first: XNNPACK would otherwise fold it after the
    cast, in fp16, where ``beta - mean * scale`` loses the difference of two large numbers (the
    earlier digits checkpoint's stem: 110/359 right instead of 353/359).
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = fold_batchnorm(copy.deepcopy(network).eval()).half()

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x.half()).float()


class _Units(nn.Module):
    """The units one after the other, pooling globally before the classifier, as every family and
    ``Truncated`` do; units in XNNPACK's forms."""

    def __init__(self, units: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(_unit(unit) for unit in units)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            if x.dim() == 4 and _is_classifier(block):
                # keepdim=True: the mean XNNPACK takes; the channel count is static under a dynamic batch.
                x = x.mean((2, 3), keepdim=True).reshape(-1, x.shape[1])
            x = block(x)
        return x


def _unit(unit: nn.Module) -> nn.Module:
    if isinstance(unit, InvertedResidual):
        return _V2Unit(unit)
    if isinstance(unit, ShuffleV1Block):
        return _V1Unit(unit)
    return unit


def _shuffle(x: Tensor, groups: int, channels: int) -> Tensor:
    """nets.common.channel_shuffle with the batch as -1, which keeps both reshapes in XNNPACK under a dynamic batch.

    ``contiguous().view`` rather than ``reshape`` after the transpose: that reshape of a non-contiguous
    tensor becomes a clone and a view whose batch is the symbolic size again.
    """
    height, width = x.shape[2], x.shape[3]
    x = x.reshape(-1, groups, channels // groups, height, width)
    return x.transpose(1, 2).contiguous().view(-1, channels, height, width)


class _V2Unit(nn.Module):
    """ShuffleNet V2's unit with the stride-1 split as two static slices."""

    def __init__(self, unit: InvertedResidual):
        super().__init__()
        self.stride, self.out_channels = unit.stride, unit.out_channels
        self.branch1, self.branch2 = unit.branch1, unit.branch2

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            half = self.out_channels // 2
            out = torch.cat((x[:, :half], self.branch2(x[:, half:])), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return _shuffle(out, 2, self.out_channels)


class _V1Unit(nn.Module):
    """ShuffleNet V1's unit with the padded shortcut pool as an explicit zero pad and an unpadded pool."""

    def __init__(self, unit: ShuffleV1Block):
        super().__init__()
        self.stride, self.groups, self.mid_channels = unit.stride, unit.groups, unit.mid_channels
        self.branch_main_1, self.branch_main_2 = unit.branch_main_1, unit.branch_main_2
        if self.stride == 2:
            pool = unit.branch_proj
            if not (isinstance(pool, nn.AvgPool2d) and pool.count_include_pad and not pool.ceil_mode):
                raise TypeError(f"unexpected ShuffleNet V1 shortcut {pool}: the rewrite assumes AvgPool2d(3, 2, 1)")
            self.pool = (pool.kernel_size, pool.stride, pool.padding)

    def forward(self, x: Tensor) -> Tensor:
        y = self.branch_main_1(x)
        if self.groups > 1:
            y = _shuffle(y, self.mid_channels // self.groups, self.mid_channels)
        y = self.branch_main_2(y)
        if self.stride == 1:
            return F.relu(y + x)
        kernel, stride, pad = self.pool
        shortcut = F.avg_pool2d(F.pad(x, (pad, pad, pad, pad)), kernel, stride, 0)
        return torch.cat((shortcut, F.relu(y)), dim=1)
