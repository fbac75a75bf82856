"""sdeploy verify: parity of every runtime at fp32 and fp16, and that broken artifacts fail."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from conftest import assert_one_line_error, run_cli
from PIL import Image

from shufflenet_deploy.fsutil import tree_sha256
from shufflenet_deploy.manifest import manifest_contract, read_manifest
from shufflenet_deploy.preprocess import random_images, random_inputs
from shufflenet_deploy.backends import runner_class
from shufflenet_deploy.verify import verify

PARITY_ARCHS = ["v2_x0_5", "v2_x1_0", "v2_x1_5", "v2_x2_0", "v1_g3_x1_0", "v1_g8_x1_0"]
PRECISIONS = {
    # every artifact fp32 (Core ML too)
    "fp32": {"precision": "fp32"},
    # fp16 weights for ONNX and NCNN, fp16 Core ML; TorchScript Mobile stays fp32
    "fp16": {"half": True},
}


@pytest.mark.slow
@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("arch", PARITY_ARCHS)
def test_every_runtime_passes_parity(arch, precision, export_cache):
    export_dir = export_cache(arch, "all", **PRECISIONS[precision])
    report = verify(export_dir, samples=6, progress=False)
    statuses = {r.key: (r.status, r.error, r.max_rel_error, r.min_cosine) for r in report.runtimes}
    assert report.passed, statuses
    assert {r.key for r in report.runtimes} == set(read_manifest(export_dir)["artifacts"])
    for r in report.runtimes:
        if r.status != "unsupported":  # a known bug of a cross-check runtime (OpenCV classic on V1), with its reason
            assert r.top1_agreement is not None and r.ms_per_inference > 0


def copy_export(export_dir, tmp_path):
    return shutil.copytree(export_dir, tmp_path / "export")


def rewrite_hash(export_dir, key):
    """Record the artifact's current hash, as a converter bug (not a disk error) would produce."""
    manifest_path = export_dir / "sdeploy.json"
    manifest = json.loads(manifest_path.read_text())
    record = manifest["artifacts"][key]
    for entry in record["files"]:
        entry["sha256"] = tree_sha256(export_dir / entry["path"])
    record["sha256"] = record["files"][0]["sha256"]
    manifest_path.write_text(json.dumps(manifest))


def test_a_changed_weight_fails_numerically_and_names_the_runtime(export_cache, tmp_path):
    export_dir = copy_export(export_cache("v2_x0_5", "onnx,ncnn"), tmp_path)
    path = export_dir / "v2_x0_5.onnx"
    model = onnx.load(path)
    weight = next(i for i in model.graph.initializer if len(i.dims) == 4 and i.dims[0] > 16)
    values = onnx.numpy_helper.to_array(weight).copy()
    values.flat[0] += 5.0
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    onnx.save(model, path)
    rewrite_hash(export_dir, "onnx")

    result = run_cli("verify", export_dir, "--samples", "4", "--runtime", "onnxruntime", "--runtime", "ncnn")
    assert result.exit_code == 1
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.endswith(("PASS", "FAIL"))}
    assert rows["onnx"].endswith("FAIL") and "onnxruntime" in rows["onnx"]
    assert rows["ncnn"].endswith("PASS")
    assert "FAILED" in result.stdout
    # Re-exported now, every part of the network matches: the file was changed after the export.
    assert "onnx (onnxruntime): the network re-exported now matches eager at every probe" in result.stdout
    # The same file in the other ONNX runtimes fails too: the change is in the artifact, not a runtime.
    others = run_cli("verify", export_dir, "--samples", "4", "--no-locate", "--json", "-")
    onnx_rows = [r for r in json.loads(others.stdout)["runtimes"] if r["key"] == "onnx"]
    assert len(onnx_rows) > 1 and all(r["status"] == "fail" for r in onnx_rows), onnx_rows


def test_a_changed_byte_in_the_ncnn_weights_fails(export_cache, tmp_path):
    export_dir = copy_export(export_cache("v2_x0_5", "onnx,ncnn"), tmp_path)
    binary = export_dir / "v2_x0_5.ncnn.bin"
    data = bytearray(binary.read_bytes())
    middle = len(data) // 2 // 4 * 4
    data[middle : middle + 4] = np.float32(50.0).tobytes()
    binary.write_bytes(bytes(data))
    rewrite_hash(export_dir, "ncnn")
    report = verify(export_dir, samples=4, locate=False, progress=False)
    status = {r.runtime: r.status for r in report.runtimes}
    assert status["ncnn"] == "fail" and status["onnxruntime"] == "pass"
    assert {s for runtime, s in status.items() if runtime != "ncnn"} == {"pass"}


def test_a_file_that_does_not_match_the_manifest_is_an_error_not_a_skip(export_cache, tmp_path):
    export_dir = copy_export(export_cache("v2_x0_5", "onnx,ncnn"), tmp_path)
    with open(export_dir / "v2_x0_5.onnx", "r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    (export_dir / "v2_x0_5.ncnn.bin").unlink()
    result = run_cli("verify", export_dir, "--samples", "2", "--json", "-")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    by_key = {r["key"]: r for r in report["runtimes"]}
    assert by_key["onnx"]["status"] == "error" and "sha256" in by_key["onnx"]["error"]
    assert by_key["ncnn"]["status"] == "error" and "v2_x0_5.ncnn.bin is missing" in by_key["ncnn"]["error"]
    assert report["passed"] is False


def test_coreml_interpreter_matches_onnxruntime_end_to_end(export_cache):
    export_dir = export_cache("v2_x0_5", "onnx,coreml", coreml_mode="tensor", precision="fp32")
    manifest = read_manifest(export_dir)
    contract = manifest_contract(manifest)
    inputs = random_inputs(4, contract, seed=9)
    onnx_out = runner_class("onnxruntime")(export_dir, manifest["artifacts"]["onnx"], contract).run(inputs)
    coreml = runner_class("coreml")(export_dir, manifest["artifacts"]["coreml-tensor-fp32"], contract)
    assert "NumPy interpreter" in coreml.description or "native" in coreml.description
    coreml_out = coreml.run(inputs)
    scale = np.abs(onnx_out).max()
    assert np.abs(coreml_out - onnx_out).max() <= 1e-4 * scale
    assert (coreml_out.argmax(1) == onnx_out.argmax(1)).all()


def test_coreml_classifier_image_input_matches_onnxruntime(export_cache):
    export_dir = export_cache("v1_g3_x0_5", "onnx,coreml", precision="fp32")  # official V1 contract: BGR, 0..255
    manifest = read_manifest(export_dir)
    contract = manifest_contract(manifest)
    assert contract.color_order == "BGR"
    inputs = random_inputs(3, contract, seed=4)
    onnx_out = runner_class("onnxruntime")(export_dir, manifest["artifacts"]["onnx"], contract).run(inputs)
    coreml_out = runner_class("coreml")(export_dir, manifest["artifacts"]["coreml-fp32"], contract).run(inputs)
    assert np.abs(coreml_out - onnx_out).max() <= 1e-4 * np.abs(onnx_out).max()


def test_labelled_images_report_accuracy_next_to_the_reference(export_cache, tmp_path):
    export_dir = export_cache("v2_x0_5", "onnx,torchscript")
    labels = read_manifest(export_dir)
    names = (export_dir / labels["labels"]["file"]).read_text().splitlines()
    for i, image in enumerate(random_images(6, 80, seed=3)):
        folder = tmp_path / "images" / names[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    report = verify(export_dir, samples=2, images=tmp_path / "images", progress=False)
    assert report.images == 6 and report.passed
    assert report.reference["accuracy"] is not None
    for r in report.runtimes:
        assert r.accuracy == report.reference["accuracy"]  # fp32 artifacts classify exactly like eager
    text = run_cli("verify", export_dir, "--samples", "0", "--images", tmp_path / "images").stdout
    assert "accuracy" in text and "reference: torch eager" in text


def test_json_report_and_runtime_filter(export_cache, tmp_path):
    export_dir = export_cache("v2_x0_5", "onnx,torchscript")
    result = run_cli("verify", export_dir, "--samples", "3", "--runtime", "torchscript", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] and [r["runtime"] for r in report["runtimes"]] == ["torchscript"]
    for field in ("max_abs_error", "max_rel_error", "min_cosine", "top1_agreement", "top5_overlap", "ms_per_inference", "atol"):
        assert report["runtimes"][0][field] is not None, field


def test_atol_overrides_the_default_tolerance(export_cache):
    export_dir = export_cache("v2_x0_5", "onnx,torchscript")
    assert run_cli("verify", export_dir, "--samples", "2", "--atol", "1e-12", "--no-locate").exit_code == 1
    assert run_cli("verify", export_dir, "--samples", "2", "--atol", "1.0").exit_code == 0


def test_missing_runtime_package_is_reported_not_passed(export_cache, monkeypatch):
    from shufflenet_deploy.backends import ncnn

    monkeypatch.setattr(ncnn.NcnnRunner, "requires", ("ncnn_is_not_installed",))
    report = verify(export_cache("v2_x0_5", "onnx,ncnn"), samples=2, progress=False)
    ncnn = next(r for r in report.runtimes if r.runtime == "ncnn")
    assert ncnn.status == "unavailable" and "not available" in ncnn.error and "shufflenet-deploy[ncnn]" in ncnn.error
    assert not report.passed


def test_reference_weights_that_changed_are_an_error(export_cache, tmp_path):
    export_dir = copy_export(export_cache("v2_x0_5", "onnx"), tmp_path)
    manifest = json.loads((export_dir / "sdeploy.json").read_text())
    manifest["weights"]["seed"] = 99
    (export_dir / "sdeploy.json").write_text(json.dumps(manifest))
    assert_one_line_error(run_cli("verify", export_dir), "differ from the exported ones")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["NOWHERE"], ["no sdeploy.json in"]),
        (["EXPORT", "--samples", "0"], ["nothing to verify with"]),
        (["EXPORT", "--runtime", "coreml"], ["no artifact that runtime(s) coreml can run"]),
        (["EXPORT", "--images", "NOWHERE"], ["image folder not found"]),
    ],
)
def test_verify_usage_errors(args, fragments, export_cache, tmp_path):
    export_dir = export_cache("v2_x0_5", "onnx,torchscript")
    args = [str(export_dir) if a == "EXPORT" else str(tmp_path / "none") if a == "NOWHERE" else a for a in args]
    assert_one_line_error(run_cli("verify", *args), *fragments)
