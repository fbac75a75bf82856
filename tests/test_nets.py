"""Network definitions: sizes, FLOPs, upstream compatibility, export-friendly forward."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import FIXTURES
from reference_fill import fill, reference_input
from torch.utils.flop_counter import FlopCounterMode

from shufflenet_deploy import create_model, get_arch, list_models, load_model
from shufflenet_deploy.complexity import count_mflops, count_params, layer_costs
from shufflenet_deploy.nets.common import channel_shuffle
from shufflenet_deploy.nets.shufflenet_v1 import OFFICIAL_CHANNELS, ShuffleV1Block, derive_channels

ALL = list_models()
TORCHVISION = json.loads((FIXTURES / "torchvision_shufflenetv2.json").read_text())
OFFICIAL_V1 = json.loads((FIXTURES / "official_shufflenetv1.json").read_text())

# Figures from the issue: torchvision's parameter counts, and published multiply-adds (MFLOPs at 224).
V2_PARAMS = {"v2_x0_5": 1_366_792, "v2_x1_0": 2_278_604, "v2_x1_5": 3_503_624, "v2_x2_0": 7_393_996}
PUBLISHED_MFLOPS = {
    "v1_g3_x1_0": 138, "v1_g8_x1_0": 138, "v1_g3_x0_5": 38, "v1_g3_x2_0": 524,
    "v1_g1_x1_0": 143, "v1_g2_x1_0": 140, "v1_g4_x1_0": 133,
    "v2_x0_5": 41, "v2_x1_0": 146, "v2_x1_5": 299, "v2_x2_0": 591,
}  # fmt: skip
# The paper's Table 1 lists 137M for g=3 and g=8 at 1.0x (the release's table says 138M).
PAPER_TABLE1_MFLOPS = {"v1_g3_x1_0": 137, "v1_g8_x1_0": 137}


def test_registry_has_every_family_member():
    v1 = [f"v1_g{g}_x{w}" for g in (1, 2, 3, 4, 8) for w in ("0_5", "1_0", "1_5", "2_0")]
    v2 = [f"v2_x{w}" for w in ("0_5", "1_0", "1_5", "2_0")]
    assert sorted(ALL) == sorted(v1 + v2)


@pytest.mark.parametrize("name", V2_PARAMS)
def test_v2_param_counts_are_torchvisions(name):
    assert count_params(create_model(name)) == V2_PARAMS[name]


@pytest.mark.parametrize("name", ALL)
def test_registry_metadata_is_measured(name):
    spec = get_arch(name)
    model = create_model(name)
    assert count_params(model) == spec.params
    assert count_mflops(model, 224) == pytest.approx(spec.mflops, abs=0.01)


@pytest.mark.parametrize("name", sorted({**PUBLISHED_MFLOPS, **PAPER_TABLE1_MFLOPS}))
def test_mflops_within_3_percent_of_published(name):
    measured = count_mflops(create_model(name), 224)
    for table in (PUBLISHED_MFLOPS, PAPER_TABLE1_MFLOPS):
        if name in table:
            assert abs(measured - table[name]) / table[name] <= 0.03, (name, measured, table[name])


@pytest.mark.parametrize("name", ["v2_x0_5", "v1_g3_x1_0", "v1_g8_x0_5", "v1_g2_x1_5"])
def test_counter_agrees_with_torch_flop_counter(name):
    model = create_model(name).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 160, 160))
    assert count_mflops(model, 160) == pytest.approx(counter.get_total_flops() / 2e6, rel=1e-9)


def test_memory_access_cost_of_a_1x1_conv_follows_the_v2_paper():
    # hw(c1 + c2) + c1*c2 for the 1x1 conv in conv5 of v2_x1_0 (464 -> 1024 channels at 7x7).
    costs = {c.name: c for c in layer_costs(create_model("v2_x1_0"), 224)}
    conv5 = costs["conv5.0"]
    assert conv5.kind == "conv1x1"
    assert conv5.memory_access == 7 * 7 * (464 + 1024) + 464 * 1024
    assert costs["stage2.0.branch1.0"].kind == "depthwise_conv"
    assert costs["fc"].kind == "linear"


# ---------------------------------------------------------------- torchvision compatibility


@pytest.mark.parametrize("name", list(V2_PARAMS))
def test_v2_state_dict_keys_and_shapes_equal_torchvisions(name):
    ours = [[k, list(v.shape)] for k, v in create_model(name).state_dict().items()]
    assert ours == TORCHVISION[name]["state_dict"]


@pytest.mark.parametrize("name", list(V2_PARAMS))
def test_torchvision_weights_load_strictly_and_give_torchvisions_outputs(name):
    reference = TORCHVISION[name]
    model = create_model(name).eval()
    model.load_state_dict(fill({k: s for k, s in reference["state_dict"]}), strict=True)
    with torch.no_grad():
        logits = model(reference_input())
    expected = np.array(reference["logits_head"])
    np.testing.assert_allclose(logits[:, : expected.shape[1]].numpy(), expected, rtol=1e-4, atol=1e-4 * reference["logits_abs_max"])
    assert logits.argmax(1).tolist() == reference["argmax"]


# ---------------------------------------------------------------- ShuffleNet V1


def test_v1_channel_lists_match_the_official_release_and_paper():
    assert get_arch("v1_g3_x1_0").channels == (24, 240, 480, 960)
    assert get_arch("v1_g8_x1_0").channels == (24, 384, 768, 1536)
    assert get_arch("v1_g3_x0_5").channels == (12, 120, 240, 480)
    assert get_arch("v1_g3_x1_5").channels[0] == 24
    assert get_arch("v1_g1_x1_0").channels[1:] == (144, 288, 576)
    assert get_arch("v1_g2_x1_0").channels[1:] == (200, 400, 800)
    assert get_arch("v1_g4_x1_0").channels[1:] == (272, 544, 1088)


def test_v1_derivation_rule_reproduces_every_official_list():
    for (groups, width), channels in OFFICIAL_CHANNELS.items():
        assert derive_channels(groups, width) == channels


@pytest.mark.parametrize("name", [n for n in ALL if n.startswith("v1")])
def test_v1_channels_are_valid_for_grouped_convs(name):
    spec = get_arch(name)
    stem, *stages = spec.channels
    for out in stages:
        assert out % (4 * spec.groups) == 0  # bottleneck out/4 split into g groups
    assert (stages[0] - stem) % spec.groups == 0  # first stride-2 branch width


def test_v1_unit_structure():
    model = create_model("v1_g3_x1_0")
    blocks = list(model.features)
    assert len(blocks) == 16
    strides = [b.stride for b in blocks]
    assert strides == [2, 1, 1, 1, 2, *[1] * 7, 2, 1, 1, 1]  # repeats 4/8/4
    assert blocks[0].branch_main_1[0].groups == 1  # first pointwise conv of stage 2 is not grouped
    assert all(b.branch_main_1[0].groups == 3 for b in blocks[1:])
    for block in blocks:
        out = 960 if block in blocks[12:] else 480 if block in blocks[4:] else 240
        assert block.branch_main_1[0].out_channels == out // 4  # bottleneck is out/4
        assert isinstance(getattr(block, "branch_proj", None), torch.nn.AvgPool2d) == (block.stride == 2)


@pytest.mark.parametrize("name", list(OFFICIAL_V1))
def test_v1_state_dict_keys_and_shapes_equal_the_official_ones(name):
    ours = [[k, list(v.shape)] for k, v in create_model(name).state_dict().items()]
    official = [[k.removeprefix("module."), s] for k, s in OFFICIAL_V1[name]["state_dict"]]
    assert ours == official


@pytest.mark.parametrize("name", ["v1_g3_x1_0", "v1_g8_x1_0", "v1_g3_x0_5", "v1_g8_x2_0"])
def test_official_v1_checkpoint_gives_the_official_outputs(name, tmp_path):
    reference = OFFICIAL_V1[name]
    state = fill({k: s for k, s in reference["state_dict"]})  # keys carry "module." as train.py saves them
    path = tmp_path / "official.pth.tar"
    torch.save({"state_dict": state}, path)

    loaded = load_model(name, path)
    with torch.no_grad():
        logits = loaded.model(reference_input())
    expected = np.array(reference["logits_head"])
    np.testing.assert_allclose(logits[:, : expected.shape[1]].numpy(), expected, rtol=1e-4, atol=1e-4 * reference["logits_abs_max"])
    assert logits.argmax(1).tolist() == reference["argmax"]
    assert loaded.weights.contract.color_order == "BGR"  # the release feeds BGR 0..255 pixels


def test_official_v1_checkpoint_arch_is_recognised_without_arch(tmp_path):
    reference = OFFICIAL_V1["v1_g8_x0_5"]
    torch.save({"state_dict": fill({k: s for k, s in reference["state_dict"]})}, tmp_path / "w.pth")
    assert load_model(None, tmp_path / "w.pth").arch.name == "v1_g8_x0_5"


# ---------------------------------------------------------------- shuffle and forward


def test_channel_shuffle_interleaves_groups():
    channels, groups = 12, 3
    x = torch.arange(channels, dtype=torch.float32).reshape(1, channels, 1, 1).expand(2, channels, 2, 3)
    out = channel_shuffle(x, groups, channels)
    per_group = channels // groups
    expected = [g * per_group + i for i in range(per_group) for g in range(groups)]
    assert out[0, :, 0, 0].tolist() == expected
    assert torch.equal(out[1], out[0])


def test_v1_shuffle_is_the_official_inverse_convention():
    block = ShuffleV1Block(24, 240, groups=3, first_unit=True, stride=2)
    mid, g = block.mid_channels, block.groups
    x = torch.arange(mid, dtype=torch.float32).reshape(1, mid, 1, 1)
    official = x.reshape(1, mid // g, g, 1, 1).permute(0, 2, 1, 3, 4).reshape(1, mid, 1, 1)
    assert torch.equal(channel_shuffle(x, mid // g, mid), official)


@pytest.mark.parametrize("name", ["v2_x0_5", "v1_g3_x0_5", "v1_g8_x0_5"])
def test_outputs_do_not_depend_on_batch_composition(name):
    model = load_model(name, "random").model
    x = reference_input(seed=3, batch=3, size=64)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(3)])
    # Kernels may sum in another order per batch size: allow float32 noise relative to the logit scale.
    torch.testing.assert_close(together, alone, rtol=0, atol=2e-5 * together.abs().max().item())


@pytest.mark.parametrize("name", ["v2_x1_0", "v1_g3_x1_0", "v1_g8_x1_0", "v1_g1_x0_5"])
@pytest.mark.parametrize("size", [32, 33, 57, 100, 224, 231])
def test_any_input_size_from_32_works(name, size):
    model = create_model(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, size, size + 5)).shape == (2, 7)


def test_global_pool_equals_the_official_avgpool7_at_224():
    model = load_model("v1_g3_x0_5", "random").model
    x = reference_input(seed=1, batch=1, size=224)
    with torch.no_grad():
        features = model.features(model.maxpool(model.first_conv(x)))
        official = model.classifier(torch.nn.AvgPool2d(7)(features).flatten(1))
        torch.testing.assert_close(model(x), official, rtol=0, atol=1e-5 * official.abs().max().item())


@pytest.mark.parametrize("name", ["v2_x0_5", "v1_g3_x0_5"])
def test_torch_export_with_dynamic_batch_and_size(name):
    model = load_model(name, "random").model
    # From 64 up: at 32 the last feature map is 1x1 and export specialises the pooling.
    batch, size = torch.export.Dim("batch", max=64), torch.export.Dim("size", min=64, max=512)
    program = torch.export.export(
        model, (torch.zeros(2, 3, 64, 64),), dynamic_shapes={"x": {0: batch, 2: size, 3: size}}
    )
    module = program.module()
    for shape in [(1, 3, 64, 64), (5, 3, 96, 96)]:
        x = reference_input(seed=2, batch=shape[0], size=shape[2])
        with torch.no_grad():
            expected = model(x)
            torch.testing.assert_close(module(x), expected, rtol=0, atol=2e-5 * expected.abs().max().item())
