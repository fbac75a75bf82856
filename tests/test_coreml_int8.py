"""int8 Core ML weights: the NumPy interpreter's decompression ops against NumPy references, and
sdeploy's coreml-int8 exports read back and verified.

References are written independently of the interpreter (explicit loops over channels and blocks).
"""

from __future__ import annotations

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")

from conftest import TEST_IMG_SIZE
from coreml_models import mil_package
from coremltools.converters.mil import Builder as mb

from shufflenet_deploy import export
from shufflenet_deploy.manifest import read_manifest
from shufflenet_deploy.backends.coreml.mil import MilProgram
from shufflenet_deploy.backends.coreml.mil.ops import constexpr_affine_dequantize, constexpr_blockwise_shift_scale
from shufflenet_deploy.verify import verify

RNG = np.random.default_rng(8)
MIL_INT8 = 21  # MIL_pb2.DataType.INT8


def integers(dtype, *shape) -> np.ndarray:
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max + 1, shape).astype(dtype)


def affine_reference(quantized, zero_point, scale, axis):
    out = np.empty(quantized.shape, np.float64)
    zero_point, scale = (
        np.broadcast_to(zero_point, quantized.shape[axis]),
        np.broadcast_to(scale, quantized.shape[axis]),
    )
    for channel in range(quantized.shape[axis]):
        index = (slice(None),) * axis + (channel,)
        out[index] = (quantized[index].astype(np.float64) - float(zero_point[channel])) * float(scale[channel])
    return out


def blockwise_reference(data, scale, offset):
    """out[i] = (data[i] - offset[block(i)]) * scale[block(i)], block(i)[d] = i[d] // (data dim / scale dim)."""
    out = np.empty(data.shape, np.float64)
    block = [full // blocks for full, blocks in zip(data.shape, scale.shape)]
    for index in np.ndindex(*data.shape):
        owner = tuple(i // b for i, b in zip(index, block))
        shift = 0.0 if offset is None else float(offset[owner])
        out[index] = (float(data[index]) - shift) * float(scale[owner])
    return out


# ---------------------------------------------------------------- kernels


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_affine_dequantize_per_channel(dtype, axis):
    quantized = integers(dtype, 6, 5, 3)
    channels = quantized.shape[axis]
    scale = RNG.uniform(0.001, 0.1, channels).astype(np.float32)
    zero_point = integers(dtype, channels)
    got = constexpr_affine_dequantize(quantized, zero_point, scale, axis)
    np.testing.assert_allclose(got, affine_reference(quantized, zero_point, scale, axis % 3), rtol=1e-6, atol=1e-7)


def test_affine_dequantize_with_scalar_zero_point_and_scale():
    quantized = integers(np.int8, 4, 7)
    got = constexpr_affine_dequantize(quantized, np.int8(-3), np.float32(0.25), 0)
    np.testing.assert_array_equal(got, (quantized.astype(np.float32) + 3) * 0.25)


@pytest.mark.parametrize(
    "data_shape, scale_shape, dtype, with_offset",
    [
        ((8, 4, 3, 3), (8, 1, 1, 1), np.int8, False),  # per output channel, symmetric: what sdeploy writes
        ((6, 10), (6, 1), np.int8, False),  # a linear layer's weight
        ((8, 4, 3, 3), (8, 2, 1, 1), np.int8, True),  # blocks of 2 input channels, with offsets
        ((6, 10), (3, 5), np.uint8, True),  # 2x2 blocks, unsigned
    ],
)
def test_blockwise_shift_scale(data_shape, scale_shape, dtype, with_offset):
    data = integers(dtype, *data_shape)
    scale = RNG.uniform(0.001, 0.1, scale_shape).astype(np.float32)
    offset = integers(dtype, *scale_shape) if with_offset else None
    got = constexpr_blockwise_shift_scale(data, scale, offset)
    np.testing.assert_allclose(got, blockwise_reference(data, scale, offset), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- whole programs, as coremltools saves them


def test_ios16_program_with_affine_dequantized_weights(tmp_path):
    weight_q = integers(np.int8, 5, 12)
    scale = RNG.uniform(0.01, 0.05, 5).astype(np.float32)
    zero_point = integers(np.int8, 5)
    x = RNG.standard_normal((2, 12)).astype(np.float32)

    def build(x):
        weight = mb.constexpr_affine_dequantize(quantized_data=weight_q, zero_point=zero_point, scale=scale, axis=0)
        return mb.linear(x=x, weight=weight)

    path = mil_package(tmp_path / "affine.mlpackage", build, x.shape, target=ct.target.iOS16)
    program = MilProgram.load(path)
    assert program.op_types()["constexpr_affine_dequantize"] == 1
    got = program.run({"x": x})[program.output_names[0]]
    np.testing.assert_allclose(got, x @ affine_reference(weight_q, zero_point, scale, 0).T, rtol=1e-5, atol=1e-5)


def test_ios18_program_with_blockwise_weights_in_fp16(tmp_path):
    data = integers(np.int8, 6, 3, 3, 3)
    scale = RNG.uniform(0.01, 0.05, (6, 1, 1, 1)).astype(np.float16)
    x = RNG.standard_normal((1, 3, 5, 5)).astype(np.float32)

    def build(x):
        weight = mb.constexpr_blockwise_shift_scale(data=data, scale=scale)
        return mb.conv(x=mb.cast(x=x, dtype="fp16"), weight=weight)

    path = mil_package(tmp_path / "blockwise.mlpackage", build, x.shape, target=ct.target.iOS18, precision="fp16")
    program = MilProgram.load(path)
    assert program.op_types()["constexpr_blockwise_shift_scale"] == 1
    got = program.run({"x": x})[program.output_names[0]]
    weight = blockwise_reference(data, scale.astype(np.float32), None)
    windows = np.lib.stride_tricks.sliding_window_view(x[0].astype(np.float64), (3, 3), axis=(1, 2))
    expected = np.einsum("chwij,ocij->ohw", windows, weight)[None]
    np.testing.assert_allclose(got, expected, rtol=1e-2, atol=2e-2 * np.abs(expected).max())  # fp16 conv


# ---------------------------------------------------------------- sdeploy exports


def int8_weight_tensors(spec) -> list[tuple[int, ...]]:
    """Shapes of the int8 tensors stored in ``main`` (as constexpr attributes or inline op inputs)."""
    function = spec.mlProgram.functions["main"]
    shapes = []
    for op in function.block_specializations[function.opset].operations:
        values = [
            *op.attributes.values(),
            *(a.value for arg in op.inputs.values() for a in arg.arguments if a.HasField("value")),
        ]
        for value in values:
            tensor = value.type.tensorType
            if value.type.WhichOneof("type") == "tensorType" and tensor.dataType == MIL_INT8:
                shapes.append(tuple(d.constant.size for d in tensor.dimensions))
    return shapes


def test_coreml_int8_classifier_stores_int8_weights_and_passes_verify(export_cache, tmp_path):
    fp16_dir = export_cache("v2_x0_5", "coreml")
    export_dir = tmp_path
    result = export("v2_x0_5", "coreml", weights="random", img_size=TEST_IMG_SIZE, out=export_dir, progress=False,
                    quantize="int8")  # fmt: skip
    assert result.ok and result.results[0].notes == [
        "int8 weights need iOS 16+: minimum deployment target raised from iOS15 to iOS16"
    ]
    record = read_manifest(export_dir)["artifacts"]["coreml-int8"]
    assert record["path"] == "v2_x0_5-int8.mlpackage" and record["precision"] == "int8"
    details = record["details"]
    assert details["minimum_deployment_target"] == "iOS16" and details["compute_precision"] == "fp16"
    assert details["quantization"]["dequantize_ops"] == {"constexpr_affine_dequantize": 28}

    spec = ct.utils.load_spec(str(export_dir / record["path"]))
    assert spec.specificationVersion == 7  # iOS 16
    shapes = [shape for shape in int8_weight_tensors(spec) if len(shape) > 1]  # not the (all-zero) zero points
    assert len(shapes) == 28 and (1000, 1024) in shapes  # the classifier among them
    assert all(np.prod(shape) >= 2048 for shape in shapes)
    assert spec.description.predictedFeatureName == "classLabel"
    assert spec.description.metadata.userDefined["arch"] == "v2_x0_5"
    assert record["size"] < 0.6 * read_manifest(fp16_dir)["artifacts"]["coreml"]["size"]

    report = verify(export_dir, samples=6, progress=False)
    (result,) = report.runtimes
    assert result.status == "pass", result
    assert result.min_cosine > 0.98 and result.max_rel_error < 0.1  # int8 weights alone cost little


def test_coreml_int8_tensor_mode_for_ios18_uses_blockwise_ops(export_cache):
    export_dir = export_cache("v2_x0_5", "coreml", quantize="int8", coreml_mode="tensor", min_ios="18")
    record = read_manifest(export_dir)["artifacts"]["coreml-tensor-int8"]
    assert record["details"]["quantization"]["dequantize_ops"] == {"constexpr_blockwise_shift_scale": 28}
    spec = ct.utils.load_spec(str(export_dir / record["path"]))
    assert spec.specificationVersion == 9  # iOS 18
    assert [f.type.multiArrayType.dataType for f in (*spec.description.input, *spec.description.output)] == [
        ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    ] * 2  # fp32 in and out, as at iOS 15, although computing in fp16
    report = verify(export_dir, samples=6, progress=False)
    assert report.passed, report.runtimes
