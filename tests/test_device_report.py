"""``sdeploy bundle`` writes a self-test; ``sdeploy verify --device-report`` judges what an app made of it.

The app is played here by onnxruntime on each self-test PNG through Python's preprocessing: exactly what
the web demo computes (the Chromium test in test_web_demo.py drives the real page).
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import onnxruntime as ort
import pytest
from conftest import TEST_IMG_SIZE, assert_one_line_error, run_cli
from PIL import Image

from shufflenet_deploy.apps.bundle import bundle
from shufflenet_deploy.apps.selftest import compare, selftest_images
from shufflenet_deploy.preprocess import InputContract, preprocess


@pytest.fixture(scope="module")
def bundled(export_cache, tmp_path_factory):
    export_dir = export_cache("v2_x0_5", "onnx")
    app = tmp_path_factory.mktemp("app")
    bundle("web", export_dir, app)
    return export_dir, app, json.loads((app / "selftest.json").read_text())


def device_report(app, selftest, perturb: float = 0.0) -> dict:
    """What the web app's Self-test exports, computed the way the page computes it."""
    meta = json.loads((app / "model.json").read_text())
    session = ort.InferenceSession(str(app / meta["model_file"]), providers=["CPUExecutionProvider"])
    contract = InputContract.from_dict(meta["preprocess"])
    images = []
    for entry in selftest["images"]:
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(entry["png_base64"]))).convert("RGB"))
        output = session.run(None, {meta["input"]["name"]: preprocess(pixels, contract)[None]})[0][0] + perturb
        images.append({"name": entry["name"], "png_sha256": entry["png_sha256"], "pixels_sha256": entry["pixels_sha256"],
                       "expected": list(entry["expected"]), "output": output.astype(float).tolist()})  # fmt: skip
    result = compare([i["output"] for i in images], [i["expected"] for i in images], selftest["tolerance"])
    return {"schema": "sdeploy-device-report/1", "app": "web", "artifact": selftest["artifact"],
            "sha256": selftest["sha256"], "runtime": "onnxruntime-web 1.30.0", "accelerator": "wasm, 1 thread",
            "device": "Test runner", **result, "median_ms": 1.0, "error": None, "images": images}  # fmt: skip


def test_the_bundle_carries_full_size_images_expected_outputs_and_tolerance(bundled):
    export_dir, app, selftest = bundled
    model_json = json.loads((app / "model.json").read_text())
    assert model_json["selftest_file"] == "selftest.json" and selftest["sha256"] == model_json["sha256"]
    names = [name for name, _, _ in selftest_images()]
    assert [i["name"] for i in selftest["images"]] == names and {i["kind"] for i in selftest["images"]} == {
        "natural", "synthetic"}
    flower = selftest["images"][0]
    assert (flower["width"], flower["height"]) == (640, 427)  # full size, before any resizing
    assert len(flower["expected"]) == 1000 and selftest["tolerance"]["atol"] > 0


def test_a_faithful_device_report_passes(bundled, tmp_path):
    export_dir, app, selftest = bundled
    report = tmp_path / "report.json"
    report.write_text(json.dumps(device_report(app, selftest)))
    result = run_cli("verify", export_dir, "--samples", "2", "--device-report", report, "--json", "-")
    assert result.exit_code == 0, result.stdout + result.stderr
    row = json.loads(result.stdout)["runtimes"][-1]
    assert row["runtime"] == "web · Test runner · wasm, 1 thread" and row["status"] == "pass"
    assert row["key"] == "onnx" and row["max_abs_error"] < row["atol"]


@pytest.mark.parametrize("case", ["tampered expected", "wrong outputs"])
def test_a_bad_device_report_fails(case, bundled, tmp_path):
    export_dir, app, selftest = bundled
    data = device_report(app, selftest, perturb=0.0 if case == "tampered expected" else 3 * selftest["tolerance"]["atol"])
    if case == "tampered expected":
        data["images"][0]["expected"][3] += 1.0
        data["verdict"] = "PASS"  # a report's own verdict is never trusted
    (tmp_path / "report.json").write_text(json.dumps(data))
    result = run_cli("verify", export_dir, "--samples", "1", "--no-locate", "--device-report", tmp_path / "report.json")
    assert_one_line_error(result, "verification failed", "(fail)", code=1)
    reason = "expected values differ from eager PyTorch" if case == "tampered expected" else "max abs error"
    assert reason in result.stdout


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda d: d.update(sha256="0" * 64), "not an artifact of this export"),
        (lambda d: d["images"][0].update(pixels_sha256="1" * 64), "not in sdeploy's self-test set"),
        (lambda d: d.update(schema="something/1"), "not a device report"),
        (lambda d: d["images"][0].update(output=["x"]), "no numeric 'output' list"),
        (lambda d: d.update(images=[]), "no sha256 or no images"),
    ],
)
def test_a_malformed_device_report_is_one_clear_line(change, fragment, bundled, tmp_path):
    export_dir, app, selftest = bundled
    data = device_report(app, selftest)
    change(data)
    (tmp_path / "report.json").write_text(json.dumps(data))
    result = run_cli("verify", export_dir, "--samples", "1", "--device-report", tmp_path / "report.json")
    assert_one_line_error(result, fragment)


def test_not_json_is_one_clear_line(bundled, tmp_path):
    (tmp_path / "report.json").write_text("{not json")
    assert_one_line_error(run_cli("verify", bundled[0], "--device-report", tmp_path / "report.json"), "not valid JSON")


def test_the_export_size_is_what_the_tests_use(bundled):
    assert json.loads((bundled[1] / "model.json").read_text())["preprocess"]["img_size"] == TEST_IMG_SIZE
