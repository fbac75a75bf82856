"""sdeploy bundle: what each demo app receives, and that every V2 arch's model.json matches Python.

The apps preprocess from ``model.json`` alone, so its contract must be the
registry's contract for the arch (the same one the manifest and
``sdeploy classify`` use), and the JavaScript preprocessing must reproduce
Python's tensors for each of those contracts.  The Kotlin side runs the same
per-arch check in tests/test_android_demo.py (it needs one kotlinc compile).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import onnx
import pytest
from conftest import REPO, TEST_IMG_SIZE, assert_one_line_error, run_cli

from shufflenet_deploy.apps.bundle import app_target, bundle
from shufflenet_deploy.apps.golden import write_golden
from shufflenet_deploy.backends import app_names
from shufflenet_deploy.manifest import read_manifest
from shufflenet_deploy.nets import get_arch, list_models
from shufflenet_deploy.preprocess import InputContract, preprocess, random_images

V2_ARCHS = list_models("v2")


def app_export(export_cache, arch: str, app: str):
    """An export that has the app's default engine's artifact, made with the options the app asks for."""
    target, binding = app_target(app, None)
    return export_cache(arch, target, **binding.export_options)


def bundle_for(export_cache, tmp_path, arch: str, app: str) -> dict:
    dest = tmp_path / f"{app}-{arch}"
    result = bundle(app, app_export(export_cache, arch, app), dest)
    model_file = app_target(app, None)[1].model_file
    assert sorted(result.files) == sorted([model_file, "labels.txt", "model.json", "selftest.json"])
    model_json = json.loads((dest / "model.json").read_text())
    assert model_json == result.model_json
    return model_json


@pytest.mark.slow
@pytest.mark.parametrize("app", app_names())
@pytest.mark.parametrize("arch", V2_ARCHS)
def test_model_json_contract_is_the_python_contract(arch, app, export_cache, tmp_path):
    model_json = bundle_for(export_cache, tmp_path, arch, app)
    export_dir = app_export(export_cache, arch, app)
    manifest = read_manifest(export_dir)
    python_contract = get_arch(arch).contract.at_size(TEST_IMG_SIZE)

    assert model_json["preprocess"] == python_contract.to_dict() == manifest["input"]
    assert model_json["arch"] == arch and model_json["num_classes"] == manifest["num_classes"]
    record = manifest["artifacts"][model_json["artifact"]]
    assert model_json["sha256"] == record["sha256"] and model_json["model_file"] == app_target(app, None)[1].model_file
    # Reading the contract back from model.json gives the very tensor Python computes.
    image = random_images(1, 90, seed=5)[0][:70]
    np.testing.assert_array_equal(
        preprocess(image, InputContract.from_dict(model_json["preprocess"])), preprocess(image, python_contract)
    )


@pytest.mark.slow
def test_model_json_names_the_real_onnx_input_and_output(export_cache, tmp_path):
    model_json = bundle_for(export_cache, tmp_path, "v2_x1_5", "web")
    graph = onnx.load(tmp_path / "web-v2_x1_5" / "model.onnx").graph
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert model_json["input"]["name"] == graph.input[0].name and model_json["input"]["shape"] == dims
    assert model_json["output"]["name"] == graph.output[0].name == "logits"
    assert dims == [1, 3, TEST_IMG_SIZE, TEST_IMG_SIZE]


@pytest.mark.slow
def test_web_preprocessing_reproduces_python_for_every_v2_model_json(export_cache, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install nodejs)")
    contracts = {
        arch: InputContract.from_dict(bundle_for(export_cache, tmp_path, arch, "web")["preprocess"]) for arch in V2_ARCHS
    }
    # Two ratios among the V2 weights (256 and 232 at 224), so the check covers both crops.
    assert len({c.resize_size for c in contracts.values()}) == 2
    golden = write_golden(tmp_path / "golden", contracts).parent
    proc = subprocess.run(
        [node, "--test", "--test-reporter=tap", "tests/preprocess.test.mjs"], cwd=REPO / "web_demo", capture_output=True, text=True,
        env={"SDEPLOY_GOLDEN_DIR": str(golden), "PATH": ""}, timeout=120, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "# fail 0" in output, output
    for arch in V2_ARCHS:
        assert f"/ {arch}" in output, f"no golden case ran for {arch}:\n{output}"


# ---------------------------------------------------------------- refusals


def test_bundle_refuses_an_artifact_that_does_not_match_its_manifest(export_cache, tmp_path):
    export_dir = shutil.copytree(export_cache("v2_x0_5", "onnx"), tmp_path / "export")
    model = export_dir / "v2_x0_5.onnx"
    data = bytearray(model.read_bytes())
    data[-100] ^= 1
    model.write_bytes(bytes(data))
    result = run_cli("bundle", "--app", "web", "--from", export_dir, "--dest", tmp_path / "dest")
    assert_one_line_error(result, "refusing to bundle onnx", "sha256", "re-export")
    assert not (tmp_path / "dest" / "model.onnx").exists()


def test_bundle_refuses_an_export_without_the_apps_target(export_cache, tmp_path):
    result = run_cli("bundle", "--app", "ios", "--from", export_cache("v2_x0_5", "onnx"), "--dest", tmp_path / "d")
    assert_one_line_error(result, "no coreml artifact for the ios app", "--target coreml")


def test_bundle_refuses_a_ptl_too_new_for_the_android_runtime(export_cache, tmp_path):
    # torch 2.13 itself writes bytecode 8; a newer torch writes more, which the manifest records.
    export_dir = shutil.copytree(export_cache("v2_x0_5", "torchscript"), tmp_path / "export")
    manifest = json.loads((export_dir / "sdeploy.json").read_text())
    manifest["artifacts"]["torchscript"]["details"]["bytecode_version"] = 9
    (export_dir / "sdeploy.json").write_text(json.dumps(manifest))
    result = run_cli("bundle", "--app", "android", "--target", "torchscript", "--from", export_dir, "--dest",
                     tmp_path / "dest")  # fmt: skip
    assert_one_line_error(result, "bytecode version 9, newer than pytorch_android_lite reads (8)", "--bytecode-version 8")
    assert not (tmp_path / "dest").exists()


def test_bundle_refuses_a_tensor_mode_core_ml_model(export_cache, tmp_path):
    export_dir = export_cache("v2_x0_5", "coreml", coreml_mode="tensor")
    result = run_cli("bundle", "--app", "ios", "--from", export_dir, "--dest", tmp_path / "dest")
    assert_one_line_error(result, "the iOS app needs a classifier-mode Core ML model", "--coreml-mode classifier")
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "pass exactly one of --from EXPORT_DIR or --arch ARCH"),
        (("--from", "x", "--arch", "v2_x0_5"), "pass exactly one of --from EXPORT_DIR or --arch ARCH"),
        (("--from", "no/such/dir"), "no/such/dir"),
    ],
)
def test_bundle_usage_errors(args, fragment):
    assert_one_line_error(run_cli("bundle", "--app", "web", *args), fragment)


def test_bundle_with_arch_exports_then_fills_the_app(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "web_demo").mkdir()
    result = run_cli("bundle", "--app", "web", "--arch", "v2_x0_5", "--weights", "random", "--img-size", "48", "--json")
    assert result.exit_code == 0, result.stderr
    model_json = json.loads(result.stdout)
    assert model_json["preprocess"]["img_size"] == 48
    assert (tmp_path / "exports" / "v2_x0_5" / "sdeploy.json").is_file()
    assert json.loads((tmp_path / "web_demo" / "model" / "model.json").read_text()) == model_json
    onnx.checker.check_model(onnx.load(tmp_path / "web_demo" / "model" / "model.onnx"))
