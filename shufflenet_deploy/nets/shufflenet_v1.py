"""ShuffleNet V1 (Zhang et al., 2018), with the official ShuffleNet-Series layout.

Module names (``first_conv``, ``features.N.branch_main_1/2``,
``classifier.0``), the bias-free classifier and the channel-shuffle order all
follow megvii-model/ShuffleNet-Series, so its released checkpoints load
without key mapping and reproduce its outputs.

Channel widths
--------------
* g=3 and g=8 use the release's hard-coded lists for every width.
* g=1, 2 and 4 at 1.0x use the paper's Table 1.
* g=1, 2 and 4 at other widths are *derived*: each 1.0x stage width is
  scaled and rounded to the nearest multiple of 4*g (half-way rounds up),
  because the bottleneck is out/4 and must split into g groups.  The stem is
  12 at 0.5x (16 if 12 would leave a stride-2 branch width that g does not
  divide), 24 at 1.0x and 1.5x, and 48 at 2.0x.  Applied to g=3 and g=8 this
  rule reproduces the release's lists exactly (a test checks it).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..preprocess import InputContract
from .common import channel_shuffle, conv_bn, global_avg_pool
from .registry import Accuracy, ArchSpec, register, width_suffix

STAGE_REPEATS = (4, 8, 4)
GROUPS = (1, 2, 3, 4, 8)
WIDTHS = (0.5, 1.0, 1.5, 2.0)

#: Paper, Table 1: stage-2 output channels at 1.0x for each group count.
TABLE1_STAGE2 = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}

#: ShuffleNet-Series release: (groups, width) -> (stem, stage2, stage3, stage4).
OFFICIAL_CHANNELS: dict[tuple[int, float], tuple[int, int, int, int]] = {
    (3, 0.5): (12, 120, 240, 480),
    (3, 1.0): (24, 240, 480, 960),
    (3, 1.5): (24, 360, 720, 1440),
    (3, 2.0): (48, 480, 960, 1920),
    (8, 0.5): (16, 192, 384, 768),
    (8, 1.0): (24, 384, 768, 1536),
    (8, 1.5): (24, 576, 1152, 2304),
    (8, 2.0): (48, 768, 1536, 3072),
}

_STEM_BY_WIDTH = {0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}


def derive_channels(groups: int, width: float) -> tuple[int, int, int, int]:
    """Stem and stage widths by the rule in the module docstring."""
    multiple = 4 * groups
    stage2 = int(TABLE1_STAGE2[groups] * width / multiple + 0.5) * multiple
    stem = _STEM_BY_WIDTH[width]
    while (stage2 - stem) % groups:
        stem += 4
    return stem, stage2, 2 * stage2, 4 * stage2


def stage_channels(groups: int, width: float) -> tuple[int, int, int, int]:
    if groups not in GROUPS or width not in WIDTHS:
        raise ValueError(f"ShuffleNet V1 needs groups in {GROUPS} and width in {WIDTHS}, got g={groups}, {width}x")
    return OFFICIAL_CHANNELS.get((groups, width)) or derive_channels(groups, width)


class ShuffleV1Block(nn.Module):
    """Grouped 1x1 -> shuffle -> depthwise 3x3 -> grouped 1x1, plus an identity or AvgPool shortcut."""

    def __init__(self, in_channels: int, out_channels: int, *, groups: int, first_unit: bool, stride: int):
        super().__init__()
        self.stride = stride
        self.groups = groups
        mid = out_channels // 4
        self.mid_channels = mid
        # A stride-2 unit concatenates its shortcut, so its branch only makes the new channels.
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        # The first unit sees the 24-channel stem: too few channels to group (paper, section 3.3).
        first_groups = 1 if first_unit else groups
        self.branch_main_1 = nn.Sequential(
            *conv_bn(in_channels, mid, 1, groups=first_groups),
            *conv_bn(mid, mid, 3, stride, groups=mid, relu=False),
        )
        self.branch_main_2 = nn.Sequential(*conv_bn(mid, branch_out, 1, groups=groups, relu=False))
        if stride == 2:
            self.branch_proj = nn.AvgPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.branch_main_1(x)
        if self.groups > 1:
            # The release reshapes to (C/g, g) before transposing: the inverse of the paper's
            # (g, C/g) shuffle, i.e. a standard shuffle with C/g groups. Trained weights depend on it.
            y = channel_shuffle(y, self.mid_channels // self.groups, self.mid_channels)
        y = self.branch_main_2(y)
        if self.stride == 1:
            return F.relu(y + x)
        return torch.cat((self.branch_proj(x), F.relu(y)), dim=1)


class ShuffleNetV1(nn.Module):
    classifier_key = "classifier.0.weight"

    def __init__(self, groups: int = 3, width: float = 1.0, num_classes: int = 1000):
        super().__init__()
        self.groups = groups
        self.width = width
        self.num_classes = num_classes
        stem, *stages = stage_channels(groups, width)

        self.first_conv = nn.Sequential(*conv_bn(3, stem, 3, stride=2))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        units: list[nn.Module] = []
        in_channels = stem
        for stage_index, (repeats, out_channels) in enumerate(zip(STAGE_REPEATS, stages, strict=True)):
            for i in range(repeats):
                units.append(
                    ShuffleV1Block(
                        in_channels,
                        out_channels,
                        groups=groups,
                        first_unit=stage_index == 0 and i == 0,
                        stride=2 if i == 0 else 1,
                    )
                )
                in_channels = out_channels
        self.features = nn.Sequential(*units)
        self.classifier = nn.Sequential(nn.Linear(in_channels, num_classes, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(self.maxpool(self.first_conv(x)))
        return self.classifier(global_avg_pool(x))

    def units(self) -> list[tuple[str, nn.Module]]:
        blocks = [(f"features.{i}", block) for i, block in enumerate(self.features)]
        return [("first_conv", self.first_conv), ("maxpool", self.maxpool), *blocks, ("classifier", self.classifier)]


# ---------------------------------------------------------------- catalogue entries

_OFFICIAL_REPO = "https://github.com/megvii-model/ShuffleNet-Series"
_OFFICIAL_SOURCE = "ShuffleNet-Series release, error table"
#: The release evaluates on BGR pixels in 0..255 with no mean/std (its ToBGRTensor transform).
OFFICIAL_CONTRACT = InputContract(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), scale=1.0, color_order="BGR")

#: (groups, width) -> (params, MFLOPs measured at 224)
_MEASURED = {
    (1, 0.5): (533_484, 38.52), (1, 1.0): (1_530_936, 143.08), (1, 1.5): (2_992_032, 308.10), (1, 2.0): (4_917_744, 550.33),
    (2, 0.5): (677_520, 40.91), (2, 1.0): (1_732_848, 140.84), (2, 1.5): (3_341_000, 308.99), (2, 2.0): (5_256_896, 539.14),
    (3, 0.5): (717_324, 37.59), (3, 1.0): (1_864_728, 137.46), (3, 1.5): (3_441_168, 292.44), (3, 2.0): (5_449_776, 524.05),
    (4, 0.5): (834_984, 40.71), (4, 1.0): (1_967_344, 134.34), (4, 1.5): (3_678_712, 295.09), (4, 2.0): (5_592_528, 510.29),
    (8, 0.5): (1_010_448, 40.47), (8, 1.0): (2_433_768, 138.37), (8, 1.5): (4_268_952, 290.19), (8, 2.0): (6_521_232, 521.94),
}  # fmt: skip

#: Published MFLOPs: the release's table for g=3/8, the paper's Table 1 for g=1/2/4 at 1.0x.
_PUBLISHED_MFLOPS = {
    (3, 0.5): 38, (3, 1.0): 138, (3, 1.5): 292, (3, 2.0): 524,
    (8, 0.5): 40, (8, 1.0): 138, (8, 1.5): 290, (8, 2.0): 522,
    (1, 1.0): 143, (2, 1.0): 140, (4, 1.0): 133,
}  # fmt: skip

#: The release's (top-1 error, top-5 error) in percent.
_OFFICIAL_ERRORS = {
    (3, 0.5): (42.7, 20.0), (3, 1.0): (32.2, 12.3), (3, 1.5): (28.4, 9.8), (3, 2.0): (25.9, 8.6),
    (8, 0.5): (41.2, 19.0), (8, 1.0): (32.0, 13.6), (8, 1.5): (29.0, 10.4), (8, 2.0): (27.1, 9.2),
}  # fmt: skip


def _reference(key: tuple[int, float]) -> Accuracy | None:
    if key not in _OFFICIAL_ERRORS:
        return None
    top1_err, top5_err = _OFFICIAL_ERRORS[key]
    return Accuracy(round(100 - top1_err, 1), round(100 - top5_err, 1), _OFFICIAL_SOURCE)


#: Where the ShuffleNet-Series README points for its trained models (a OneDrive folder, so no direct download).
_OFFICIAL_MODELS = "https://1drv.ms/f/s!AgaP37NGYuEXhRfQxHRseR7eSxXo"


def _manual_hint(groups: int, width: float) -> str:
    return (f"the official ShuffleNetV1 {width}x (group={groups}) checkpoint is in the ShuffleNet-Series trained-models "
            f"folder {_OFFICIAL_MODELS} (linked from {_OFFICIAL_REPO}); download it by hand, keep the file anywhere, "
            "and pass it as --weights PATH: its {'state_dict': ...} format with 'module.' keys loads as it is")


for (_groups, _width), (_params, _mflops) in _MEASURED.items():
    _official = (_groups, _width) in OFFICIAL_CHANNELS
    register(
        ArchSpec(
            name=f"v1_g{_groups}_{width_suffix(_width)}",
            family="v1",
            width=_width,
            groups=_groups,
            channels=stage_channels(_groups, _width),
            build=partial(ShuffleNetV1, _groups, _width),
            params=_params,
            mflops=_mflops,
            published_mflops=_PUBLISHED_MFLOPS.get((_groups, _width)),
            pretrained=None,
            manual_weights=_manual_hint(_groups, _width) if _official else None,
            reference=_reference((_groups, _width)),
            contract=OFFICIAL_CONTRACT if _official else InputContract(),
        )
    )
