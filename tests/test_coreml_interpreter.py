"""The NumPy Core ML interpreter, op by op and end to end, against PyTorch and NumPy references.

Packages are built with coremltools in temporary directories (see
``coreml_models``); references never go through the interpreter.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

ct = pytest.importorskip("coremltools")

from coreml_models import (
    LAYOUTS,
    classifier_package,
    export_classifier,
    mil_package,
    random_pixels,
    rename_arrays,
    torch_package,
)
from coremltools.converters.mil import Builder as mb

from shufflenet_deploy.errors import SdeployError
from shufflenet_deploy.preprocess import IMAGENET_MEAN, IMAGENET_STD
from shufflenet_deploy.backends.coreml.mil import MilProgram, UnsupportedOpError
from shufflenet_deploy.zoo import load_model

RNG = np.random.default_rng(0)


def normal(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def run_single(path, **feeds) -> list:
    """Load, run, and return the outputs in the spec's order."""
    program = MilProgram.load(path)
    outputs = program.run(feeds)
    return [outputs[name] for name in program.output_names]


def as_torch(*arrays):
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


def same_padding(size, kernel, stride, dilation=1, lower=False):
    """TensorFlow's SAME rule, written independently of the interpreter: (before, after)."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


# --------------------------------------------------------------------------- conv

CONV_CASES = {
    "valid+bias": ((1, 4, 9, 9), (6, 4, 3, 3), {"pad_type": "valid"}, True),
    "same, stride 2, even kernel": ((1, 3, 9, 10), (5, 3, 4, 4), {"pad_type": "same", "strides": [2, 2]}, False),
    "same_lower, stride 2": ((1, 3, 9, 10), (5, 3, 4, 4), {"pad_type": "same_lower", "strides": [2, 2]}, True),
    "custom, dilated, uneven": (
        (1, 3, 11, 12),
        (4, 3, 3, 3),
        {"pad_type": "custom", "pad": [1, 2, 0, 3], "dilations": [2, 2], "strides": [1, 2]},
        True,
    ),
    "grouped": ((2, 6, 8, 8), (9, 2, 3, 3), {"pad_type": "custom", "pad": [1, 1, 1, 1], "groups": 3}, True),
    "pointwise grouped": ((1, 6, 5, 5), (12, 2, 1, 1), {"pad_type": "valid", "groups": 3}, False),
    "depthwise, stride 2": (
        (1, 5, 9, 9),
        (5, 1, 3, 3),
        {"pad_type": "custom", "pad": [1, 1, 1, 1], "groups": 5, "strides": [2, 2]},
        True,
    ),
    "depthwise x2, same": ((1, 3, 7, 7), (6, 1, 3, 3), {"pad_type": "same", "groups": 3}, False),
}


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv(tmp_path, case):
    x_shape, w_shape, params, with_bias = CONV_CASES[case]
    x, weight, bias = normal(*x_shape), normal(*w_shape), normal(w_shape[0])
    target = ct.target.iOS16 if params["pad_type"] == "same_lower" else ct.target.iOS15

    def build(x):
        return mb.conv(x=x, weight=weight, bias=bias if with_bias else None, **params)

    (got,) = run_single(mil_package(tmp_path / "m.mlpackage", build, x_shape, target=target), x=x)

    strides, dilations = params.get("strides", [1, 1]), params.get("dilations", [1, 1])
    if params["pad_type"] == "custom":
        (top, bottom, left, right) = params["pad"]
    elif params["pad_type"] == "valid":
        top = bottom = left = right = 0
    else:
        lower = params["pad_type"] == "same_lower"
        top, bottom = same_padding(x_shape[2], w_shape[2], strides[0], dilations[0], lower)
        left, right = same_padding(x_shape[3], w_shape[3], strides[1], dilations[1], lower)
    tx, tw, tb = as_torch(x, weight, bias)
    want = F.conv2d(
        F.pad(tx, (left, right, top, bottom)),
        tw,
        tb if with_bias else None,
        strides,
        0,
        dilations,
        params.get("groups", 1),
    )
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)


def test_torch_convs_with_padding_groups_and_dilation(tmp_path):
    """Convs as torch.export hands them to coremltools (padding='same' with an even kernel included)."""
    net = nn.Sequential(
        nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2),
        nn.ReLU(),
        nn.Conv2d(8, 8, 4, padding="same", dilation=2, groups=8),
        nn.Conv2d(8, 6, 1, bias=False),
    ).eval()
    x = torch.randn(1, 4, 15, 13)
    path = torch_package(tmp_path / "m.mlpackage", net, x)
    program = MilProgram.load(path)
    assert program.op_types()["conv"] == 3
    got = program.run({"input": x.numpy()})[program.output_names[0]]
    np.testing.assert_allclose(got, net(x).detach().numpy(), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- pooling

POOL_CASES = {
    "max, pad 1": ("max", {"pad_type": "custom", "pad": [1, 1, 1, 1]}, False),
    "max, pad 1, ceil": ("max", {"pad_type": "custom", "pad": [1, 1, 1, 1], "ceil_mode": True}, False),
    "max, valid, ceil": ("max", {"pad_type": "valid", "ceil_mode": True}, False),
    "max, same": ("max", {"pad_type": "same"}, False),
    "max, stride 3, ceil drops a window": (
        "max",
        {"pad_type": "custom", "pad": [1, 1, 1, 1], "ceil_mode": True},
        False,
    ),
    "avg, pad 1, padding counted": ("avg", {"pad_type": "custom", "pad": [1, 1, 1, 1]}, False),
    "avg, pad 1, padding excluded": ("avg", {"pad_type": "custom", "pad": [1, 1, 1, 1]}, True),
    "avg, pad 1, ceil, counted": ("avg", {"pad_type": "custom", "pad": [1, 1, 1, 1], "ceil_mode": True}, False),
    "avg, pad 1, ceil, excluded": ("avg", {"pad_type": "custom", "pad": [1, 1, 1, 1], "ceil_mode": True}, True),
    "avg, valid, ceil": ("avg", {"pad_type": "valid", "ceil_mode": True}, False),
    "avg, same, counted": ("avg", {"pad_type": "same"}, False),
    "avg, same, excluded": ("avg", {"pad_type": "same"}, True),
    "avg, stride 3, ceil drops a window": ("avg", {"pad_type": "custom", "pad": [1, 1, 1, 1], "ceil_mode": True}, True),
}


@pytest.mark.parametrize("case", POOL_CASES)
def test_pooling(tmp_path, case):
    kind, params, exclude = POOL_CASES[case]
    x = normal(2, 3, 10, 11)  # odd sizes, so ceil_mode and SAME padding have something to do
    # Kernel 2, stride 3: ceil_mode's last window would start in the right padding, so PyTorch drops it.
    kernel, stride = ((2, 2), (3, 3)) if "stride 3" in case else ((3, 3), (2, 2))

    def build(x):
        if kind == "max":
            return mb.max_pool(x=x, kernel_sizes=kernel, strides=stride, **params)
        return mb.avg_pool(x=x, kernel_sizes=kernel, strides=stride, exclude_padding_from_average=exclude, **params)

    program = MilProgram.load(mil_package(tmp_path / "m.mlpackage", build, x.shape))
    assert program.op_types()[f"{kind}_pool"] == 1
    got = program.run({"x": x})[program.output_names[0]]
    np.testing.assert_allclose(got, reference_pool(x, kind, kernel, stride, params, exclude), rtol=1e-5, atol=1e-6)


def reference_pool(x, kind, kernel, stride, params, exclude):
    """PyTorch pooling (Core ML documents ceil_mode as PyTorch's); SAME padding spelled out with F.pad."""
    (tx,) = as_torch(x)
    ceil = params.get("ceil_mode", False)
    if params["pad_type"] == "same":
        top, bottom = same_padding(x.shape[2], kernel[0], stride[0])
        left, right = same_padding(x.shape[3], kernel[1], stride[1])
        widths = (left, right, top, bottom)
        if kind == "max":
            return F.max_pool2d(F.pad(tx, widths, value=-math.inf), kernel, stride).numpy()
        total = F.avg_pool2d(F.pad(tx, widths), kernel, stride)
        if not exclude:
            return total.numpy()
        return (total / F.avg_pool2d(F.pad(torch.ones_like(tx), widths), kernel, stride)).numpy()
    padding = params.get("pad", [0])[0]
    if kind == "max":
        return F.max_pool2d(tx, kernel, stride, padding, ceil_mode=ceil).numpy()
    return F.avg_pool2d(tx, kernel, stride, padding, ceil_mode=ceil, count_include_pad=not exclude).numpy()


# --------------------------------------------------------------------------- other ops

BIAS = normal(1, 3, 1, 1)
WEIGHT = normal(5, 4)
LINEAR_BIAS = normal(5)

# op type -> (build, inputs, NumPy reference returning the outputs in order)
OP_CASES = {
    "add": (lambda x: mb.add(x=x, y=BIAS), [(2, 3, 4, 5)], lambda x: [x + BIAS]),
    "sub": (lambda x, y: mb.sub(x=x, y=y), [(2, 3, 4, 5), (1, 3, 1, 5)], lambda x, y: [x - y]),
    "mul": (lambda x, y: mb.mul(x=x, y=y), [(2, 3, 4, 5), (3, 1, 1)], lambda x, y: [x * y]),
    "real_div": (lambda x, y: mb.real_div(x=x, y=y), [(2, 3, 4, 5), (1, 3, 1, 1)], lambda x, y: [x / y]),
    "relu": (lambda x: mb.relu(x=x), [(2, 3, 4, 5)], lambda x: [np.maximum(x, 0)]),
    "reshape": (lambda x: mb.reshape(x=x, shape=[0, -1, 3, 4]), [(2, 6, 2, 4)], lambda x: [x.reshape(2, 4, 3, 4)]),
    "transpose": (lambda x: mb.transpose(x=x, perm=[0, 2, 3, 1]), [(2, 3, 4, 5)], lambda x: [x.transpose(0, 2, 3, 1)]),
    "squeeze": (lambda x: mb.squeeze(x=x, axes=[1]), [(2, 1, 4, 1)], lambda x: [x[:, 0]]),
    "expand_dims": (lambda x: mb.expand_dims(x=x, axes=[0, -1]), [(3, 4)], lambda x: [x[None, :, :, None]]),
    "softmax": (
        lambda x: mb.softmax(x=x, axis=1),
        [(2, 7, 3)],
        lambda x: [np.exp(x) / np.exp(x).sum(1, keepdims=True)],
    ),
    "reduce_mean keep_dims": (
        lambda x: mb.reduce_mean(x=x, axes=[2, 3], keep_dims=True),
        [(2, 3, 4, 5)],
        lambda x: [x.mean((2, 3), keepdims=True)],
    ),
    "reduce_mean": (lambda x: mb.reduce_mean(x=x, axes=[-1]), [(2, 3, 4, 5)], lambda x: [x.mean(-1)]),
    "linear": (
        lambda x: mb.linear(x=x, weight=WEIGHT, bias=LINEAR_BIAS),
        [(3, 4)],
        lambda x: [x @ WEIGHT.T + LINEAR_BIAS],
    ),
    "linear without bias": (lambda x: mb.linear(x=x, weight=WEIGHT), [(3, 4)], lambda x: [x @ WEIGHT.T]),
    "matmul": (
        lambda x, y: mb.matmul(x=x, y=y, transpose_y=True),
        [(2, 3, 4), (2, 5, 4)],
        lambda x, y: [x @ y.transpose(0, 2, 1)],
    ),
    "split num_splits": (
        lambda x: mb.split(x=x, num_splits=2, axis=1),
        [(2, 6, 3)],
        lambda x: [x[:, :3], x[:, 3:]],
    ),
    "split split_sizes": (
        lambda x: mb.split(x=x, split_sizes=[1, 3, 2], axis=-1),
        [(2, 3, 6)],
        lambda x: [x[..., :1], x[..., 1:4], x[..., 4:]],
    ),
    "concat": (
        lambda x, y: mb.concat(values=[x, y], axis=-1),
        [(2, 3, 4), (2, 3, 2)],
        lambda x, y: [np.concatenate([x, y], -1)],
    ),
}


@pytest.mark.parametrize("case", OP_CASES)
def test_op(tmp_path, case):
    build, shapes, reference = OP_CASES[case]
    inputs = [normal(*shape) for shape in shapes]
    path = mil_package(tmp_path / "m.mlpackage", build, *shapes)
    program = MilProgram.load(path)
    op_type = case.split()[0]
    assert program.op_types()[op_type] == 1, program.op_types()
    outputs = program.run(dict(zip(program.input_names, inputs)))
    got = [outputs[name] for name in program.output_names]
    want = reference(*inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_concat_interleave_takes_one_slice_of_each_input_in_turn(tmp_path):
    a, b, c = (np.arange(12, dtype=np.float32).reshape(1, 4, 3) + 100 * k for k in range(3))

    def build(a, b, c):
        return mb.concat(values=[a, b, c], axis=1, interleave=True)

    (got,) = run_single(mil_package(tmp_path / "m.mlpackage", build, *[a.shape] * 3), a=a, b=b, c=c)
    assert got.shape == (1, 12, 3)
    # MIL docs: output[0::n] = a, output[1::n] = b, ... along the axis.
    np.testing.assert_array_equal(got[:, 0::3], a)
    np.testing.assert_array_equal(got[:, 1::3], b)
    np.testing.assert_array_equal(got[:, 2::3], c)


def test_torch_channel_shuffle_becomes_interleave(tmp_path):
    """ShuffleNet V2's split + shuffle: coremltools fuses reshape/transpose/reshape into concat(interleave=True)."""
    from shufflenet_deploy.nets.common import channel_shuffle

    class Shuffle(nn.Module):
        def forward(self, x):
            left, right = x.chunk(2, dim=1)
            return channel_shuffle(torch.cat([left, torch.relu(right)], 1), 2, 8)

    x = torch.randn(1, 8, 5, 5)
    program = MilProgram.load(torch_package(tmp_path / "m.mlpackage", Shuffle(), x))
    assert program.op_types()["split"] == 1
    got = program.run({"input": x.numpy()})[program.output_names[0]]
    np.testing.assert_allclose(got, Shuffle()(x).numpy(), rtol=0, atol=0)


def test_cast_rounds_to_fp16_and_back(tmp_path):
    x = normal(2, 50) * 100

    def build(x):
        return mb.cast(x=mb.cast(x=x, dtype="fp16"), dtype="fp32")

    program = MilProgram.load(mil_package(tmp_path / "m.mlpackage", build, x.shape))
    assert program.op_types()["cast"] == 2
    got = program.run({"x": x})[program.output_names[0]]
    np.testing.assert_array_equal(got, x.astype(np.float16).astype(np.float32))
    assert not np.array_equal(got, x)


def test_classify_outputs_label_and_probabilities_per_item(tmp_path):
    labels = ["cat", "dog", "eel"]
    path = mil_package(
        tmp_path / "m.mlpackage",
        lambda x: mb.softmax(x=x, axis=-1),
        (1, 3),
        classifier_config=ct.ClassifierConfig(labels),
    )
    program = MilProgram.load(path)
    assert program.is_classifier and program.class_labels == labels
    x = np.array([[1.0, 3.0, 2.0], [5.0, 0.0, 1.0], [0.0, 0.0, 9.0]], np.float32)
    outputs = program.run({"x": x})  # a batch of 3 through a batch-1 model
    assert outputs["classLabel"] == ["dog", "cat", "eel"]
    probabilities = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    assert len(outputs["classLabel_probs"]) == 3
    for row, dictionary in zip(probabilities, outputs["classLabel_probs"]):
        assert list(dictionary) == labels
        np.testing.assert_allclose([dictionary[k] for k in labels], row, rtol=1e-6)


def test_tensor_program_is_not_a_classifier(tmp_path):
    program = MilProgram.load(mil_package(tmp_path / "m.mlpackage", lambda x: mb.relu(x=x), (1, 2)))
    assert not program.is_classifier and program.class_labels is None and program.image_input is None


# --------------------------------------------------------------------------- image inputs


class Double(nn.Module):
    def forward(self, x):
        return x * 2


@pytest.mark.parametrize(
    "layout, scale, bias",
    [("RGB", 1 / 255, [0.5, -1.0, 2.0]), ("BGR", 0.5, [1.0, 2.0, 3.0]), ("GRAYSCALE", 2.0, 0.25)],
)
def test_image_input_preprocessing(tmp_path, layout, scale, bias):
    channels = 1 if layout == "GRAYSCALE" else 3
    shape = (1, channels, 6, 5)
    image = ct.ImageType(name="image", shape=shape, scale=scale, bias=bias, color_layout=LAYOUTS[layout])
    program = MilProgram.load(torch_package(tmp_path / "m.mlpackage", Double(), torch.rand(shape), image))
    info = program.image_input
    assert (info.name, info.shape, info.color_layout) == ("image", shape, layout)
    assert info.scale == pytest.approx(scale)
    assert info.bias == pytest.approx(tuple(np.broadcast_to(bias, (channels,))))
    pixels = random_pixels((2, *shape[1:]))  # channel 0 is blue for BGR: the bias list is in model order
    got = program.run({"image": pixels})[program.output_names[0]]
    per_channel = np.asarray(bias, np.float32).reshape(1, -1, 1, 1)
    np.testing.assert_allclose(got, 2 * (pixels * np.float32(scale) + per_channel), rtol=1e-6, atol=1e-5)


# --------------------------------------------------------------------------- precision


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(F.avg_pool2d(torch.relu(self.conv(x)), 2).mean((2, 3)))


def test_fp32_matches_torch_and_fp16_is_rounded(tmp_path):
    net, x = SmallNet().eval(), torch.randn(2, 3, 12, 12)
    want = net(x).detach().numpy()
    fp32 = run_single(torch_package(tmp_path / "fp32.mlpackage", net, x, precision="fp32"), input=x.numpy())[0]
    fp16_path = torch_package(tmp_path / "fp16.mlpackage", net, x, precision="fp16")
    assert MilProgram.load(fp16_path).op_types()["cast"] >= 2
    fp16 = run_single(fp16_path, input=x.numpy())[0]
    scale = np.abs(want).max()
    assert np.abs(fp32 - want).max() <= 1e-5 * scale
    assert np.abs(fp16 - want).max() <= 1e-2 * scale
    # fp16 rounding really happens: the fp16 result differs from fp32 and is fp16-representable.
    assert np.abs(fp16 - fp32).max() > 1e-5 * scale
    np.testing.assert_array_equal(fp16, fp16.astype(np.float16).astype(np.float32))
    assert not np.array_equal(fp32, fp32.astype(np.float16).astype(np.float32))


# --------------------------------------------------------------------------- int8 weights


class QuantNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8 * 6 * 6, 5)

    def forward(self, x, conv_weight=None, fc_weight=None):
        y = torch.relu(F.conv2d(x, self.conv.weight if conv_weight is None else conv_weight, self.conv.bias))
        return F.linear(y.flatten(1), self.fc.weight if fc_weight is None else fc_weight, self.fc.bias)


def symmetric_int8(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8, dequantized: scale = max|w| / 127, q = round(w / scale)."""
    flat = weight.detach().reshape(weight.shape[0], -1).numpy()
    scale = np.abs(flat).max(axis=1, keepdims=True) / 127
    return torch.from_numpy(
        (np.clip(np.round(flat / scale), -127, 127) * scale).reshape(weight.shape).astype(np.float32)
    )


@pytest.mark.parametrize(
    "target, op", [("iOS16", "constexpr_affine_dequantize"), ("iOS18", "constexpr_blockwise_shift_scale")]
)
def test_int8_weight_quantization(tmp_path, target, op):
    import coremltools.optimize.coreml as cto

    net, x = QuantNet().eval(), torch.randn(2, 3, 8, 8)
    path = torch_package(tmp_path / "f.mlpackage", net, x[:1], target=getattr(ct.target, target))
    config = cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0
        )
    )
    quantized = cto.linear_quantize_weights(ct.models.MLModel(str(path), skip_model_load=True), config)
    quantized.save(str(tmp_path / "q.mlpackage"))
    program = MilProgram.load(tmp_path / "q.mlpackage")
    assert program.op_types()[op] == 2
    got = program.run({"input": x.numpy()})[program.output_names[0]]
    want = net(x, symmetric_int8(net.conv.weight), symmetric_int8(net.fc.weight)).detach().numpy()
    unquantized = net(x).detach().numpy()
    quantization_error = np.abs(unquantized - want).max()
    assert quantization_error > 1e-4
    assert np.abs(got - want).max() < 0.05 * quantization_error


@pytest.mark.parametrize("target", ["iOS16", "iOS18"])
def test_asymmetric_uint8_weights_match_coremltools_decompression(tmp_path, target):
    import coremltools.optimize.coreml as cto

    net, x = QuantNet().eval(), torch.randn(1, 3, 8, 8)
    path = torch_package(tmp_path / "f.mlpackage", net, x, target=getattr(ct.target, target))
    config = cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(mode="linear", dtype="uint8", weight_threshold=0)
    )
    quantized = cto.linear_quantize_weights(ct.models.MLModel(str(path), skip_model_load=True), config)
    quantized.save(str(tmp_path / "q.mlpackage"))
    cto.decompress_weights(quantized).save(str(tmp_path / "d.mlpackage"))
    got = run_single(tmp_path / "q.mlpackage", input=x.numpy())[0]
    decompressed = MilProgram.load(tmp_path / "d.mlpackage")
    assert not any(t.startswith("constexpr") for t in decompressed.op_types())
    np.testing.assert_allclose(
        got, decompressed.run({"input": x.numpy()})[decompressed.output_names[0]], rtol=1e-6, atol=1e-6
    )
    assert not np.allclose(got, net(x).detach().numpy(), rtol=0, atol=1e-6)


def test_own_blob_reader_agrees_with_coremltools(tmp_path):
    """values.BlobFile parses weight.bin itself; coremltools' private reader must see the same numbers."""
    from coremltools.libmilstoragepython import _BlobStorageReader

    from shufflenet_deploy.backends.coreml.mil.values import BlobFile

    net = QuantNet().eval()
    path = torch_package(tmp_path / "m.mlpackage", net, torch.randn(1, 3, 8, 8), precision="fp16")
    weights = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    spec = ct.utils.load_spec(str(path))
    block = spec.mlProgram.functions["main"].block_specializations[spec.mlProgram.functions["main"].opset]
    blobs = [
        op.attributes["val"]
        for op in block.operations
        if op.type == "const" and op.attributes["val"].HasField("blobFileValue")
    ]
    assert blobs
    ours, theirs = BlobFile(weights), _BlobStorageReader(str(weights))
    for value in blobs:
        count = int(np.prod([d.constant.size for d in value.type.tensorType.dimensions]))
        mine = ours.read(value.blobFileValue.offset, "FLOAT16", count)
        np.testing.assert_array_equal(mine.view(np.uint16), theirs.read_fp16_data(value.blobFileValue.offset))


# --------------------------------------------------------------------------- ShuffleNets end to end

ARCHS = ["v2_x0_5", "v1_g3_x0_5", "v1_g8_x0_5"]
SIZE = 64


@pytest.fixture(scope="module")
def networks():
    return {arch: load_model(arch, "random") for arch in ARCHS}


@pytest.fixture(scope="module")
def classifier_exports(networks):
    """torch.export once per arch; each precision converts the same exported program."""
    cache = {}

    def get(arch):
        if arch not in cache:
            cache[arch] = export_classifier(networks[arch].model, SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        return cache[arch]

    return get


def normalized(pixels: np.ndarray) -> torch.Tensor:
    """What the classifier wrapper computes from pixels, in the same float32 steps."""
    mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1)
    inv_std = (1 / torch.tensor(IMAGENET_STD, dtype=torch.float32)).numpy().reshape(1, 3, 1, 1)
    return torch.from_numpy((pixels * np.float32(1 / 255) - mean) * inv_std)


def cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("arch", ["v2_x0_5", "v1_g3_x0_5"])
def test_classifier_mode_matches_pytorch(tmp_path, networks, classifier_exports, arch, precision):
    loaded = networks[arch]
    labels = loaded.weights.labels
    path = classifier_package(tmp_path / "c.mlpackage", classifier_exports(arch), labels, precision)
    program = MilProgram.load(path)
    assert program.output_names == ["classLabel", "classLabel_probs", "logits"]
    assert program.class_labels == labels
    assert program.op_types()["conv"] == sum(isinstance(m, nn.Conv2d) for m in loaded.model.modules())
    pixels = random_pixels((3, 3, SIZE, SIZE), seed=1)
    outputs = program.run({"image": pixels})
    with torch.no_grad():
        want = loaded.model(normalized(pixels)).numpy()
    logits = outputs["logits"]
    assert logits.shape == want.shape and logits.dtype == np.float32
    assert outputs["classLabel"] == [labels[i] for i in logits.argmax(1)]
    probabilities = np.array([[d[k] for k in labels] for d in outputs["classLabel_probs"]])
    np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-3)
    if precision == "fp32":
        assert np.abs(logits - want).max() <= 1e-4 * np.abs(want).max()
        assert outputs["classLabel"] == [labels[i] for i in want.argmax(1)]
        np.testing.assert_allclose(probabilities, torch.softmax(torch.from_numpy(logits), 1).numpy(), atol=1e-6)
    else:
        assert (cosine(logits, want) > 0.999).all()
        assert (logits.argmax(1) == want.argmax(1)).sum() >= 2
        assert np.abs(logits - want).max() > 1e-4 * np.abs(want).max()  # fp16 rounding is simulated


@pytest.mark.slow
def test_official_v1_style_bgr_classifier(tmp_path, networks):
    """The official V1 weights' contract: BGR pixels, scale 1, no mean/std."""
    model = networks["v1_g8_x0_5"].model
    labels = networks["v1_g8_x0_5"].weights.labels
    exported = export_classifier(model, SIZE, scale=1.0)
    path = classifier_package(tmp_path / "c.mlpackage", exported, labels, "fp32", color_layout="BGR", scale=1.0)
    program = MilProgram.load(path)
    assert (program.image_input.color_layout, program.image_input.scale) == ("BGR", 1.0)
    pixels = random_pixels((2, 3, SIZE, SIZE), seed=2)
    outputs = program.run({"image": pixels})
    with torch.no_grad():
        want = model(torch.from_numpy(pixels)).numpy()
    assert np.abs(outputs["logits"] - want).max() <= 1e-4 * np.abs(want).max()
    assert outputs["classLabel"] == [labels[i] for i in want.argmax(1)]


@pytest.mark.slow
@pytest.mark.parametrize("arch, batch", [("v2_x0_5", "dynamic"), ("v1_g3_x0_5", 1), ("v1_g8_x0_5", 2)])
def test_tensor_mode_matches_pytorch(tmp_path, networks, arch, batch):
    model = networks[arch].model
    dynamic = batch == "dynamic"
    example = torch.randn(2 if dynamic else batch, 3, SIZE, SIZE)
    path = rename_arrays(torch_package(tmp_path / "t.mlpackage", model, example, dynamic_batch=dynamic), ["logits"])
    program = MilProgram.load(path)
    assert program.input_names == ["input"] and program.output_names == ["logits"]
    x = torch.randn(4, 3, SIZE, SIZE)  # dynamic: one run; fixed 1: four; fixed 2: two
    with torch.no_grad():
        want = model(x).numpy()
    got = program.run({"input": x.numpy()})["logits"]
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


# --------------------------------------------------------------------------- errors


def test_unsupported_op_fails_at_load_naming_it(tmp_path):
    path = mil_package(tmp_path / "m.mlpackage", lambda x: mb.relu(x=mb.gelu(x=x)), (1, 4))
    with pytest.raises(UnsupportedOpError, match="Core ML op 'gelu' is not supported by the NumPy interpreter") as info:
        MilProgram.load(path)
    assert isinstance(info.value, SdeployError) and info.value.exit_code == 2


def test_every_unsupported_op_is_named(tmp_path):
    path = mil_package(tmp_path / "m.mlpackage", lambda x: mb.sin(x=mb.gelu(x=x)), (1, 4))
    with pytest.raises(UnsupportedOpError, match="'gelu', 'sin' are not supported"):
        MilProgram.load(path)


def test_bad_inputs_are_user_errors(tmp_path):
    program = MilProgram.load(mil_package(tmp_path / "m.mlpackage", lambda x: mb.relu(x=x), (1, 3, 4, 4)))
    with pytest.raises(SdeployError, match="takes shape"):
        program.run({"x": np.zeros((1, 3, 5, 4), np.float32)})
    with pytest.raises(SdeployError, match="missing"):
        program.run({"y": np.zeros((1, 3, 4, 4), np.float32)})
    with pytest.raises(SdeployError, match="not found"):
        MilProgram.load(tmp_path / "absent.mlpackage")
