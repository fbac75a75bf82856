"""``--embed-preprocess``, ``--layout`` and ``--softmax``: artifacts that take pixels or NHWC and return probabilities."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import TEST_IMG_SIZE, run_cli

from shufflenet_deploy import load_model, verify
from shufflenet_deploy.apps.bundle import bundle
from shufflenet_deploy.manifest import read_manifest
from shufflenet_deploy.modelio import Adapter, ModelIO, to_model_input
from shufflenet_deploy.predict import softmax
from shufflenet_deploy.preprocess import normalize, random_images


@pytest.mark.parametrize("arch", ["v2_x0_5", "v1_g3_x0_5"])  # RGB and the official V1 BGR 0-255 contract
def test_the_adapter_takes_rgb_pixels_and_applies_the_contract(arch):
    loaded = load_model(arch, "random")
    contract = loaded.weights.contract.at_size(TEST_IMG_SIZE)
    pixels = random_images(3, TEST_IMG_SIZE, seed=4)
    io = ModelIO(kind="pixels", layout="NHWC", probabilities=True)
    with torch.no_grad():
        adapted = Adapter(loaded.model, contract, io)(torch.from_numpy(pixels)).numpy()
        reference = loaded.model(torch.from_numpy(np.stack([normalize(p.astype(np.float64), contract) for p in pixels])))
    np.testing.assert_allclose(adapted, softmax(reference.numpy()), atol=1e-6)
    assert np.allclose(adapted.sum(axis=1), 1.0, atol=1e-5)


def test_verify_inputs_reach_a_pixel_artifact_as_the_same_8_bit_pixels():
    contract = load_model("v1_g3_x0_5", "none").weights.contract.at_size(TEST_IMG_SIZE)
    pixels = random_images(2, TEST_IMG_SIZE, seed=9)
    normalised = np.stack([normalize(p.astype(np.float64), contract) for p in pixels])
    converted = to_model_input(normalised, contract, ModelIO("pixels", "NHWC"))
    assert converted.dtype == np.uint8 and converted.shape == (2, TEST_IMG_SIZE, TEST_IMG_SIZE, 3)
    np.testing.assert_array_equal(converted, pixels)  # RGB again, although the V1 contract is BGR
    nchw = to_model_input(normalised, contract, ModelIO("tensor", "NHWC"))
    np.testing.assert_array_equal(nchw, normalised.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("variant_options, key, io", [
    ({"embed_preprocess": True}, "onnx-u8", ("pixels", "NHWC", "logits")),
    ({"embed_preprocess": True, "layout": "nchw", "softmax": True}, "onnx-u8-nchw-softmax", ("pixels", "NCHW", "probabilities")),
    ({"layout": "nhwc"}, "onnx-nhwc", ("tensor", "NHWC", "logits")),
])  # fmt: skip
def test_onnx_variants_export_beside_the_float_one_and_verify(variant_options, key, io, export_cache):
    export_dir = export_cache("v2_x0_5", "onnx", **variant_options)
    record = read_manifest(export_dir)["artifacts"][key]
    spec, output = record["inputs"][0], record["outputs"][0]
    assert (spec["kind"], spec["layout"], output["kind"]) == io
    assert spec["dtype"] == ("uint8" if io[0] == "pixels" else "float32")
    assert record["path"] == f"v2_x0_5-{key.removeprefix('onnx-')}.onnx"
    session = ort.InferenceSession(str(export_dir / record["path"]), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == ("tensor(uint8)" if io[0] == "pixels" else "tensor(float)")
    report = verify(export_dir, samples=4, runtimes=["onnxruntime"], progress=False)
    assert report.passed, [(r.key, r.status, r.reason) for r in report.runtimes]


@pytest.mark.slow
def test_every_backend_that_can_takes_pixels_and_the_others_say_why(tmp_path):
    out = tmp_path / "u8"
    result = run_cli("export", "--arch", "v2_x0_5", "--weights", "random", "--img-size", TEST_IMG_SIZE, "--target",
                     "onnx,torchscript,ncnn,coreml", "--embed-preprocess", "--softmax", "--out", out, "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    statuses = {t["target"]: t["status"] for t in json.loads(result.stdout)["targets"]}
    assert statuses == {"onnx": "ok", "torchscript": "ok", "ncnn": "skipped", "coreml": "skipped"}
    report = verify(out, samples=4, progress=False)
    assert report.passed, [(r.key, r.runtime, r.status, r.reason) for r in report.runtimes]
    assert {r.key for r in report.runtimes} == {"onnx-u8-softmax", "torchscript-u8-softmax"}


def test_a_web_bundle_of_a_pixel_artifact_says_so_in_model_json(export_cache, tmp_path):
    export_dir = export_cache("v2_x0_5", "onnx", embed_preprocess=True, softmax=True)
    result = bundle("web", export_dir, tmp_path / "app", artifact="onnx-u8-softmax")
    assert result.model_json["input"]["kind"] == "pixels" and result.model_json["input"]["layout"] == "NHWC"
    assert result.model_json["output"]["kind"] == "probabilities"
    selftest = json.loads((tmp_path / "app" / "selftest.json").read_text())
    assert selftest["output_kind"] == "probabilities" and abs(sum(selftest["images"][0]["expected"]) - 1) < 1e-5
