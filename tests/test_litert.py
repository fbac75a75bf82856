"""sdeploy export --target litert: file names, refused options, the max-pool rewrite, parity per arch and
precision, NHWC and pixel input, TFLite metadata read back, int8 accuracy on the digits model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TEST_IMG_SIZE, assert_one_line_error, assert_verifies_in_one_xnnpack_partition, run_cli
from digits_data import DIGITS_CHECKPOINT, INT8_MAX_EXTRA_ERRORS, recorded_heldout, write_digits

from shufflenet_deploy import export, load_model
from shufflenet_deploy.backends import ExportOptions, get_backend
from shufflenet_deploy.backends.litert.metadata import (
    LABELS_FILE,
    SDEPLOY_FILE,
    read_associated_files,
    read_metadata,
    read_sdeploy_metadata,
)
from shufflenet_deploy.backends.litert.runner import make_interpreter
from shufflenet_deploy.backends.litert.target import ZeroPadMaxPool, zero_pad_maxpools
from shufflenet_deploy.errors import SdeployError
from shufflenet_deploy.manifest import manifest_contract, read_manifest
from shufflenet_deploy.modelio import ModelIO, adapt
from shufflenet_deploy.nets.common import Truncated
from shufflenet_deploy.verify import verify

TARGET = get_backend("litert").target
#: Their fp32 exports must pass verify's fp32 rule (max abs error within 1e-4 of the logit range).
PARITY_ARCHS = ["v2_x0_5", "v2_x1_0", "v1_g3_x1_0", "v1_g8_x1_0"]


def only_record(export_dir) -> tuple[dict, dict]:
    manifest = read_manifest(export_dir)
    (record,) = manifest["artifacts"].values()
    return manifest, record


def artifact_bytes(export_dir) -> bytes:
    return (export_dir / only_record(export_dir)[1]["path"]).read_bytes()


# ---------------------------------------------------------------- options (no conversion)


@pytest.mark.parametrize("options, key, file", [
    ({}, "litert", "v2_x0_5.tflite"),
    ({"half": True}, "litert-fp16", "v2_x0_5-fp16.tflite"),
    ({"quantize": "int8"}, "litert-int8", "v2_x0_5-int8.tflite"),
    ({"layout": "nhwc"}, "litert-nhwc", "v2_x0_5-nhwc.tflite"),
    ({"layout": "nhwc", "half": True}, "litert-nhwc-fp16", "v2_x0_5-nhwc-fp16.tflite"),
    ({"embed_preprocess": True, "softmax": True}, "litert-u8-softmax", "v2_x0_5-u8-softmax.tflite"),
    ({"embed_preprocess": True, "layout": "nchw"}, "litert-u8-nchw", "v2_x0_5-u8-nchw.tflite"),
])  # fmt: skip
def test_keys_and_file_names(options, key, file):
    export_options = ExportOptions(**options)
    assert TARGET.unavailable(export_options) is None
    assert TARGET.key(export_options) == key and TARGET.file_names("v2_x0_5", export_options) == [file]


def test_dynamic_batch_is_refused_with_the_reason():
    reason = TARGET.unavailable(ExportOptions(dynamic_batch=True))
    assert "dynamic batch" in reason and "--batch N" in reason


def test_dynamic_batch_alone_is_one_clear_error(tmp_path):
    result = run_cli("export", "--arch", "v2_x0_5", "--weights", "random", "--target", "litert", "--dynamic-batch",
                     "--out", tmp_path / "out")  # fmt: skip
    assert_one_line_error(result, "no chosen target can export with these options", "litert: litert-torch cannot")
    assert not (tmp_path / "out").exists()


def test_the_android_app_takes_nhwc_and_refuses_a_batch_it_cannot_feed():
    binding = get_backend("litert").apps["android"]
    assert binding.model_file == "model.tflite" and TARGET.key(ExportOptions(**binding.export_options)) == "litert-nhwc"
    binding.check({"inputs": [{"shape": [1, TEST_IMG_SIZE, TEST_IMG_SIZE, 3]}]})
    with pytest.raises(SdeployError, match="re-export litert with --batch 1"):
        binding.check({"inputs": [{"shape": [2, TEST_IMG_SIZE, TEST_IMG_SIZE, 3]}]})


def test_int8_needs_calibration_images(tmp_path):
    result = run_cli("export", "--arch", "v2_x0_5", "--weights", "random", "--target", "litert", "--quantize", "int8",
                     "--out", tmp_path / "out")  # fmt: skip
    assert_one_line_error(result, "--quantize int8 for litert needs calibration images")


# ---------------------------------------------------------------- the max-pool rewrite (no conversion)


@pytest.mark.parametrize("arch", ["v2_x0_5", "v1_g3_x0_5"])
def test_zero_padded_maxpool_gives_identical_outputs_and_leaves_the_model_alone(arch):
    loaded = load_model(arch, "random", img_size=TEST_IMG_SIZE)
    network = loaded.model.eval()
    pixels_nhwc = adapt(network, loaded.weights.contract, ModelIO(kind="pixels", layout="NHWC"))
    images = torch.randint(0, 256, (2, TEST_IMG_SIZE, TEST_IMG_SIZE, 3), dtype=torch.uint8)
    assert_exact_rewrite(pixels_nhwc, images)
    # verify --locate exports prefixes of the network
    assert_exact_rewrite(Truncated(network, 3).eval(), torch.randn(2, 3, TEST_IMG_SIZE, TEST_IMG_SIZE))


def assert_exact_rewrite(original: torch.nn.Module, inputs: torch.Tensor) -> None:
    rewritten = zero_pad_maxpools(original)
    assert sum(isinstance(m, ZeroPadMaxPool) for m in rewritten.modules()) == 1
    assert not any(isinstance(m, ZeroPadMaxPool) for m in original.modules())
    with torch.no_grad():
        assert torch.equal(rewritten(inputs), original(inputs))


def test_a_maxpool_without_relu_before_it_keeps_its_padding():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.MaxPool2d(3, 2, 1))
    assert zero_pad_maxpools(model) is model


# ---------------------------------------------------------------- parity (exports)


@pytest.mark.slow
@pytest.mark.parametrize("arch", PARITY_ARCHS)
def test_fp32_passes_verify_fully_delegated(arch, export_cache):
    export_dir = export_cache(arch, "litert")
    _, record = only_record(export_dir)
    assert record["path"] == f"{arch}.tflite" and record["format"] == "tflite" and record["precision"] == "fp32"
    assert record["inputs"][0]["shape"] == [1, 3, TEST_IMG_SIZE, TEST_IMG_SIZE]
    details = record["details"]
    assert details["fully_delegated"] and details["xnnpack_partitions"] == 1 and details["ops_outside_xnnpack"] == {}
    assert "pads with zeros" in details["maxpool_zero_padding"]
    assert all(details["converter_versions"][p] for p in ("litert-torch", "ai-edge-litert", "ai-edge-quantizer"))
    report = assert_verifies_in_one_xnnpack_partition(export_dir, samples=4, runtime="litert")
    assert report.runtimes[0].max_rel_error <= 1e-4


@pytest.mark.slow
def test_nhwc_at_224_passes_verify_with_image_metadata(export_cache):
    export_dir = export_cache("v2_x0_5", "litert", img_size=224, layout="nhwc")
    _, record = only_record(export_dir)
    assert record["path"] == "v2_x0_5-nhwc.tflite" and record["inputs"][0]["shape"] == [1, 224, 224, 3]
    assert record["inputs"][0]["layout"] == "NHWC" and record["details"]["fully_delegated"]
    assert_verifies_in_one_xnnpack_partition(export_dir, samples=3, runtime="litert")
    (image,) = read_metadata(artifact_bytes(export_dir))["subgraphs"][0]["inputs"]
    assert image["content"] == {"kind": "image", "color_space": "RGB", "size": [224, 224]}
    assert image["dimension_names"] == ["batch", "height", "width", "channels"]


@pytest.mark.slow
def test_fp16_weights_pass_verify_at_half_the_size(export_cache):
    export_dir = export_cache("v2_x0_5", "litert", half=True, author="Jane Doe", license="MIT")
    _, record = only_record(export_dir)
    assert record["path"] == "v2_x0_5-fp16.tflite" and record["precision"] == "fp16"
    assert record["details"]["fully_delegated"] and "float_casting" in record["exporter"]
    fp32_size = only_record(export_cache("v2_x0_5", "litert"))[1]["size"]
    assert record["size"] < 0.55 * fp32_size
    assert_verifies_in_one_xnnpack_partition(export_dir, samples=4, runtime="litert")
    metadata = read_metadata(artifact_bytes(export_dir))
    assert (metadata["author"], metadata["license"]) == ("Jane Doe", "MIT")


@pytest.mark.slow
def test_pixel_input_with_softmax_and_a_fixed_batch_passes_verify(export_cache):
    export_dir = export_cache("v2_x0_5", "litert", embed_preprocess=True, softmax=True, batch=2)
    _, record = only_record(export_dir)
    assert record["path"] == "v2_x0_5-u8-softmax.tflite"
    assert record["inputs"][0] == {"name": "args_0", "shape": [2, TEST_IMG_SIZE, TEST_IMG_SIZE, 3], "dtype": "uint8",
                                   "kind": "pixels", "layout": "NHWC"}  # fmt: skip
    assert record["outputs"][0]["kind"] == "probabilities" and record["outputs"][0]["shape"] == [2, 1000]
    # Only the uint8 -> float CAST in front stays on the reference kernels.
    assert record["details"]["xnnpack_partitions"] == 1 and record["details"]["ops_outside_xnnpack"] == {"CAST": 1}
    # 3 inputs on a batch of 2: the runner pads the last batch
    assert_verifies_in_one_xnnpack_partition(export_dir, samples=3, runtime="litert")
    (image,) = read_metadata(artifact_bytes(export_dir))["subgraphs"][0]["inputs"]
    # The contract is inside the model: the metadata tells apps to feed pixels unchanged.
    assert image["normalization"] == {"mean": [0.0] * 3, "std": [1.0] * 3}
    assert image["stats"] == {"max": [255.0] * 3, "min": [0.0] * 3}


# ---------------------------------------------------------------- metadata


@pytest.mark.slow
def test_metadata_and_associated_files_read_back(export_cache):
    export_dir = export_cache("v2_x0_5", "litert")
    manifest, record = only_record(export_dir)
    data = artifact_bytes(export_dir)
    metadata = read_metadata(data)
    assert metadata["name"] == "v2_x0_5" and "ShuffleNet V2" in metadata["description"]
    assert metadata["version"] == manifest["weights"]["state_sha256"][:12]
    assert (metadata["author"], metadata["min_parser_version"]) == ("shufflenet-deploy", "1.0.0")
    assert metadata["license"] == "unspecified (set it with --license)"
    assert [f["name"] for f in metadata["associated_files"]] == [SDEPLOY_FILE]

    (subgraph,) = metadata["subgraphs"]
    (tensor,), (scores,) = subgraph["inputs"], subgraph["outputs"]
    contract = manifest_contract(manifest)
    # The schema's normalisation is on 0-255 values: mean / scale and std / scale of the contract.
    assert tensor["normalization"]["mean"] == pytest.approx([m / contract.scale for m in contract.mean], rel=1e-6)
    assert tensor["normalization"]["std"] == pytest.approx([s / contract.scale for s in contract.std], rel=1e-6)
    assert tensor["content"] == {"kind": "feature"} and tensor["dimension_names"][1] == "channels"
    assert scores["associated_files"] == [{"name": LABELS_FILE, "type": "TENSOR_AXIS_LABELS",
                                           "description": "Class labels, one per line, in output order."}]  # fmt: skip

    files = read_associated_files(data)
    assert set(files) == {LABELS_FILE, SDEPLOY_FILE}
    assert files[LABELS_FILE] == (export_dir / "labels.txt").read_bytes()
    embedded = read_sdeploy_metadata(data)
    assert embedded["arch"] == "v2_x0_5" and embedded["weights_sha256"] == manifest["weights"]["state_sha256"]
    assert json.loads(embedded["input_contract"]) == manifest["input"] and len(json.loads(embedded["labels"])) == 1000
    assert record["details"]["metadata"]["normalization"]["mean"] == pytest.approx(tensor["normalization"]["mean"])


# ---------------------------------------------------------------- skipped with a note


@pytest.mark.slow
def test_dynamic_batch_skips_litert_with_a_note(tmp_path):
    result = export("v2_x0_5", "torchscript,litert", weights="random", img_size=TEST_IMG_SIZE, out=tmp_path,
                    progress=False, dynamic_batch=True)  # fmt: skip
    statuses = {r.target: r.status for r in result.results}
    assert result.ok and statuses == {"torchscript": "ok", "litert": "skipped"}
    (skipped,) = [r for r in result.results if r.target == "litert"]
    assert "fixed --batch N" in skipped.notes[0]
    assert read_manifest(tmp_path)["notes"] == [f"litert: {skipped.notes[0]}"]


# ---------------------------------------------------------------- int8 accuracy on real data


@pytest.mark.slow
def test_digits_int8_keeps_accuracy(tmp_path):
    """Full-integer int8 (float I/O) of the trained digits model, calibrated on its training images."""
    digits = write_digits(tmp_path / "digits")
    out = tmp_path / "export"
    result = export(None, "litert", weights=DIGITS_CHECKPOINT, out=out, progress=False, quantize="int8",
                    calib=digits / "train")  # fmt: skip
    assert result.ok, result.to_dict()
    _, record = only_record(out)
    assert record["path"] == "v2_x0_5-int8.tflite" and record["precision"] == "int8"
    quantization = record["details"]["quantization"]
    assert quantization["calibration"]["images_used"] == 256 and "min/max" in quantization["ranges"]
    assert record["inputs"][0]["dtype"] == "float32" and record["details"]["fully_delegated"]
    interpreter = make_interpreter(out / record["path"], xnnpack=False)
    dtypes = [t["dtype"] for t in interpreter.get_tensor_details()]
    assert dtypes.count(np.int8) > 100  # weights and activations; only the model's input and output stay float
    assert interpreter.get_input_details()[0]["dtype"] == interpreter.get_output_details()[0]["dtype"] == np.float32

    report = verify(out, images=digits / "heldout", samples=0, progress=False)
    (runtime,) = report.runtimes
    assert runtime.status == "pass", runtime
    recorded = recorded_heldout()
    assert report.images == recorded["total"]
    assert round(report.reference["accuracy"] * report.images) == recorded["correct"]
    assert round(runtime.accuracy * report.images) >= recorded["correct"] - INT8_MAX_EXTRA_ERRORS, runtime.accuracy
