"""ShuffleNet V2 (Ma et al., 2018), with torchvision's ``state_dict`` layout.

Module names and Sequential indices follow torchvision's
``shufflenet_v2_*`` exactly, so its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from ..preprocess import InputContract
from ..weights import PretrainedWeights
from .common import channel_shuffle, conv_bn, global_avg_pool
from .registry import Accuracy, ArchSpec, register, width_suffix

STAGE_REPEATS = (4, 8, 4)

#: Width multiplier -> (stem, stage2, stage3, stage4, conv5) output channels (paper, Table 5).
STAGE_CHANNELS: dict[float, tuple[int, int, int, int, int]] = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}


def _depthwise_bn(channels: int, stride: int) -> list[nn.Module]:
    return conv_bn(channels, channels, 3, stride, groups=channels, relu=False)


class InvertedResidual(nn.Module):
    """One V2 unit: split (stride 1) or duplicate (stride 2) the input, transform one half, concat, shuffle."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.out_channels = out_channels
        half = out_channels // 2
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"a stride-1 unit keeps its width, got {in_channels} -> {out_channels}")
        if stride > 1:
            self.branch1 = nn.Sequential(*_depthwise_bn(in_channels, stride), *conv_bn(in_channels, half, 1))
        else:
            self.branch1 = nn.Sequential()
        branch2_in = in_channels if stride > 1 else half
        self.branch2 = nn.Sequential(
            *conv_bn(branch2_in, half, 1),
            *_depthwise_bn(half, stride),
            *conv_bn(half, half, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2, self.out_channels)


class ShuffleNetV2(nn.Module):
    classifier_key = "fc.weight"

    def __init__(self, width: float = 1.0, num_classes: int = 1000):
        super().__init__()
        if width not in STAGE_CHANNELS:
            raise ValueError(f"ShuffleNet V2 width must be one of {sorted(STAGE_CHANNELS)}, got {width}")
        self.width = width
        self.num_classes = num_classes
        stem, *stages, last = STAGE_CHANNELS[width]

        self.conv1 = nn.Sequential(*conv_bn(3, stem, 3, stride=2))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = stem
        for index, (repeats, out_channels) in enumerate(zip(STAGE_REPEATS, stages, strict=True), start=2):
            units = [InvertedResidual(in_channels, out_channels, 2)]
            units += [InvertedResidual(out_channels, out_channels, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{index}", nn.Sequential(*units))
            in_channels = out_channels
        self.conv5 = nn.Sequential(*conv_bn(in_channels, last, 1))
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        x = global_avg_pool(self.conv5(x))
        return self.fc(x)

    def units(self) -> list[tuple[str, nn.Module]]:
        units: list[tuple[str, nn.Module]] = [("conv1", self.conv1), ("maxpool", self.maxpool)]
        for stage in ("stage2", "stage3", "stage4"):
            units += [(f"{stage}.{i}", unit) for i, unit in enumerate(getattr(self, stage))]
        return units + [("conv5", self.conv5), ("fc", self.fc)]


# ---------------------------------------------------------------- catalogue entries

_TORCHVISION = "https://download.pytorch.org/models/"
_TV_SOURCE = "torchvision ShuffleNet_V2_*_Weights.IMAGENET1K_V1"
_TV_RECIPE = "https://github.com/pytorch/vision/pull/5906"  # new recipe, evaluated at resize 232


def _pretrained(filename: str, size_mib: float, top1: float, top5: float, resize_size: int = 256) -> PretrainedWeights:
    return PretrainedWeights(
        url=_TORCHVISION + filename,
        size_mib=size_mib,
        contract=InputContract(resize_size=resize_size),
        top1=top1,
        top5=top5,
        recipe=_TV_RECIPE if resize_size == 232 else "https://github.com/ericsun99/Shufflenet-v2-Pytorch",
    )


#: width -> (params, MFLOPs measured at 224, paper MFLOPs, published weights: file, size in MiB as torchvision
#: publishes it (``_file_size``), top-1, top-5, resize size)
_VARIANTS = {
    0.5: (1_366_792, 40.48, 41, _pretrained("shufflenetv2_x0.5-f707e7126e.pth", 5.282, 60.552, 81.746)),
    1.0: (2_278_604, 144.91, 146, _pretrained("shufflenetv2_x1-5666bf0f80.pth", 8.791, 69.362, 88.316)),
    1.5: (3_503_624, 295.76, 299, _pretrained("shufflenetv2_x1_5-3c479a10.pth", 13.557, 72.996, 91.086, 232)),
    2.0: (7_393_996, 583.25, 591, _pretrained("shufflenetv2_x2_0-8be3c8ee.pth", 28.433, 76.230, 93.006, 232)),
}

for _width, (_params, _mflops, _paper, _weights) in _VARIANTS.items():
    register(
        ArchSpec(
            name=f"v2_{width_suffix(_width)}",
            family="v2",
            width=_width,
            groups=None,
            channels=STAGE_CHANNELS[_width],
            build=partial(ShuffleNetV2, _width),
            params=_params,
            mflops=_mflops,
            published_mflops=_paper,
            pretrained=_weights,
            manual_weights=None,
            reference=Accuracy(_weights.top1, _weights.top5, _TV_SOURCE),
            contract=_weights.contract,
        )
    )
