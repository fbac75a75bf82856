"""The web demo (web_demo/): its JavaScript against Python's golden vectors, and the page in a real browser.

* ``node --test web_demo/tests/`` with a fresh ``sdeploy demo golden`` directory (needs only ``node``):
  preprocessing (whole image and tiled, float tensor and 8-bit pixels), model.json schema 1/2, top-k,
  labels and the self-test comparison; plus negative controls (a tensor off by 1e-4, a self-test metric
  off by 1e-9 must fail them).
* End to end: export v2_x0_5 to ONNX, bundle it into temporary copies of the page, serve them with
  ``demo_server.make_server`` (which sends the cross-origin isolation headers) and drive headless Chromium
  with ``web_demo/tests/e2e_driver.mjs`` (playwright-core): a small PNG, a photo over iOS Safari's canvas
  limit, a 24 MP JPEG with EXIF rotation and an image with alpha through the file input; keyboard-only
  use; a phone viewport; the Self-test action and its downloaded report (and a tampered self-test that
  must FAIL); a uint8 "pixels" model with probability outputs; wasm threads vs one thread; peak memory.
  Artifacts go to test-artifacts/ (screenshots, web_demo*.json).

The browser tests need ``npm ci`` in web_demo/ and Chromium at /usr/bin/chromium (or $SDEPLOY_CHROMIUM);
without them they are skipped, unless SDEPLOY_REQUIRE_WEB_DEMO=1 (set it in CI) turns the skip into a failure.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from shufflenet_deploy.apps.golden import write_golden

REPO = Path(__file__).resolve().parent.parent
WEB = REPO / "web_demo"
NODE_MODULES = WEB / "node_modules"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("SDEPLOY_CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node")

INPUT_ATOL = 1e-5  # the page's network input vs preprocess.preprocess(): the part the page controls
# Logits: onnxruntime-web's wasm kernels and native onnxruntime (or torch) differ by ~2e-4 on the *same* input for
# random-weight v2_x0_5 (logits up to ~12), so an absolute 1e-4 is below fp32 noise. Use sdeploy verify's fp32 rule
# instead: max abs error <= 1e-4 x the logit range (about 2e-3 here), and cosine >= 0.99999.
LOGIT_REL_TOL = 1e-4
MIN_COSINE = 0.99999
SAFARI_CANVAS_LIMIT = 16_777_216  # pixels; iOS Safari reads a larger canvas back as blank
PAGE_EXCLUDE = {"node_modules", "model", "tests"}


def _missing(reason: str) -> None:
    if os.environ.get("SDEPLOY_REQUIRE_WEB_DEMO") == "1":
        pytest.fail(f"{reason} (SDEPLOY_REQUIRE_WEB_DEMO=1 requires the web demo tests to run)")
    pytest.skip(reason)


def _need_node() -> str:
    if NODE is None:
        _missing("node is not on PATH (the web demo's tests need Node 20+)")
    return NODE


def _need_browser_stack() -> str:
    node = _need_node()
    for package in ("onnxruntime-web/dist", "playwright-core"):
        if not (NODE_MODULES / package).exists():
            _missing(f"web_demo/node_modules/{package} is missing: run 'npm ci' in web_demo/")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SDEPLOY_CHROMIUM)")
    return node


# ---------------------------------------------------------------- JavaScript units vs golden vectors


def _golden(dest: Path) -> Path:
    """``write_golden`` plus, per image x contract, the resized crop before normalisation (HWC RGB) for the
    "pixels" input kind, unless golden.json already carries it: ``pixels_f64le_b64`` (float64, unrounded) and
    ``pixels_u8_b64`` (np.rint, as preprocess_8bit rounds)."""
    from shufflenet_deploy.preprocess import InputContract, resize_and_crop

    path = write_golden(dest)
    data = json.loads(path.read_text())
    for case in data["images"]:
        rgba = np.frombuffer(base64.b64decode(case["rgba_b64"]), np.uint8).reshape(case["height"], case["width"], 4)
        for key, entry in case["tensors"].items():
            if "pixels_u8_b64" not in entry:
                pixels = resize_and_crop(rgba[..., :3], InputContract.from_dict(data["contracts"][key]))
                entry["pixels_f64le_b64"] = base64.b64encode(pixels.astype("<f8").tobytes()).decode()
                rounded = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
                entry["pixels_u8_b64"] = base64.b64encode(rounded.tobytes()).decode()
    path.write_text(json.dumps(data))
    return path.parent


def _run_node_tests(golden_dir: Path, *files: str) -> tuple[int, str]:
    env = {**os.environ, "SDEPLOY_GOLDEN_DIR": str(golden_dir)}
    proc = subprocess.run(
        # Files, not the folder: Node 22+ reads `--test` arguments as globs, so `tests/` would match nothing.
        [_need_node(), "--test", "--test-reporter=tap", *(files or sorted(str(p.relative_to(WEB)) for p in (WEB / "tests").glob("*.test.mjs")))],
        check=False, cwd=WEB, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def test_web_demo_js_matches_python_golden(tmp_path):
    _need_node()
    golden = _golden(tmp_path / "golden")
    returncode, output = _run_node_tests(golden)
    assert returncode == 0, output
    assert "# fail 0" in output, output
    assert "# SKIP" not in output, f"golden tests did not run:\n{output}"
    data = json.loads((golden / "golden.json").read_text())
    # whole-image tensors, tiled reads and 8-bit pixels per image x contract; top-k; labels; self-test comparisons
    cases = 3 * len(data["images"]) * len(data["contracts"])
    cases += len(data["topk"]) + len(data["labels"]) + len(data["selftest_compare"])
    passed = sum(line.startswith(("ok ", "    ok ")) for line in output.splitlines())
    assert passed >= cases, f"expected at least {cases} passing golden cases:\n{output}"


def test_preprocess_js_tests_reject_a_1e4_error(tmp_path):
    """Negative control: the node tests must fail when one tensor element is off by 1e-4."""
    _need_node()
    golden = _golden(tmp_path / "golden")
    path = golden / "golden.json"
    data = json.loads(path.read_text())
    case = data["images"][0]
    key = next(iter(data["contracts"]))
    entry = case["tensors"][key]
    tensor = np.frombuffer(base64.b64decode(entry["tensor_f32le_b64"]), "<f4").copy()
    tensor[len(tensor) // 2] += np.float32(1e-4)
    entry["tensor_f32le_b64"] = base64.b64encode(tensor.astype("<f4").tobytes()).decode()
    path.write_text(json.dumps(data))
    returncode, output = _run_node_tests(golden, "tests/preprocess.test.mjs")
    assert returncode != 0, f"a 1e-4 tensor error went unnoticed:\n{output}"
    assert f"{case['name']}/{key}: max abs diff" in output, output
    assert "# fail 1" in output, output


def test_selftest_js_tests_reject_a_1e9_metric_error(tmp_path):
    """Negative control: the comparison tests must see a metric 1e-9 away from Python's, and a flipped verdict."""
    _need_node()
    golden = _golden(tmp_path / "golden")
    path = golden / "golden.json"
    data = json.loads(path.read_text())
    cases = data["selftest_compare"]
    cases[1]["result"]["max_abs_error"] += 1e-9
    cases[2]["result"]["verdict"] = "PASS" if cases[2]["result"]["verdict"] == "FAIL" else "FAIL"
    path.write_text(json.dumps(data))
    returncode, output = _run_node_tests(golden, "tests/selftest.test.mjs")
    assert returncode != 0, output
    assert "max_abs_error:" in output and "# fail 2" in output, output


# ---------------------------------------------------------------- the page in a real browser: fixtures


@dataclass
class Site:
    base: str  # http://127.0.0.1:PORT
    root: Path  # served folder: one copy of the page per subfolder
    images: dict[str, Path]


def _page_copy(dest: Path) -> Path:
    """The page's files (not node_modules/model/tests), with the real node_modules symlinked in."""
    dest.mkdir(parents=True)
    for item in WEB.iterdir():
        if item.name not in PAGE_EXCLUDE and item.is_file():
            shutil.copy2(item, dest / item.name)
    (dest / "node_modules").symlink_to(NODE_MODULES.resolve(), target_is_directory=True)
    return dest


def _photo() -> np.ndarray:
    """A natural photo (scikit-learn's sample, a test dependency), HxWx3 uint8."""
    from sklearn.datasets import load_sample_image

    return load_sample_image("china.jpg")


def _textured(width: int, height: int) -> np.ndarray:
    """The photo scaled to width x height plus a fine deterministic texture (every pixel matters to the resize)."""
    scaled = np.asarray(Image.fromarray(_photo()).resize((width, height), Image.BILINEAR), np.int16)
    y, x = np.ogrid[:height, :width]
    texture = ((x * 7 + y * 13) % 11 - 5).astype(np.int16)
    return np.clip(scaled + texture[..., None], 0, 255).astype(np.uint8)


def _make_images(folder: Path) -> dict[str, Path]:
    from shufflenet_deploy.preprocess import random_images

    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    # 400x300 RGB PNG: the shorter side is downscaled, so the antialiasing path runs.
    images["small"] = folder / "test-image.png"
    Image.fromarray(random_images(1, 400, seed=3)[0][:300]).save(images["small"])
    # Alpha: opaque inside, fully transparent (but with colours stored) in a 40-pixel frame.
    rgba = np.dstack([_textured(320, 240), np.full((240, 320), 255, np.uint8)])
    rgba[:40, :, 3] = rgba[-40:, :, 3] = rgba[:, :40, 3] = rgba[:, -40:, 3] = 0
    images["alpha"] = folder / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(images["alpha"])
    # Every pixel transparent black: exactly what a failed canvas readback returns.
    images["blank"] = folder / "blank.png"
    Image.fromarray(np.zeros((48, 64, 4), np.uint8), "RGBA").save(images["blank"])
    # Over iOS Safari's canvas limit: 5200 x 3300 = 17.2 MP, lossless, so the contract can be checked exactly.
    images["huge"] = folder / "huge-17mp.png"
    Image.fromarray(_textured(5200, 3300)).save(images["huge"], compress_level=1)
    # A phone camera's 24 MP JPEG, stored landscape with EXIF orientation 6 (displayed portrait, 4000 x 6000).
    images["jpeg24"] = folder / "camera-24mp.jpg"
    jpeg = Image.fromarray(_textured(6000, 4000))
    exif = jpeg.getexif()
    exif[0x0112] = 6
    jpeg.save(images["jpeg24"], quality=92, exif=exif)
    return images


def _selftest_images() -> list[tuple[str, str, np.ndarray]]:
    from shufflenet_deploy.preprocess import random_images

    return [("photo-china", "natural", _photo()), ("noise-0", "synthetic", random_images(1, 300, seed=5)[0][:, :211]),
            ("noise-1", "synthetic", random_images(1, 256, seed=6)[0])]  # fmt: skip


def _ensure_selftest(model_dir: Path) -> dict:
    """The bundle's own selftest.json when ``sdeploy bundle`` wrote one; otherwise build one like it (expected =
    onnxruntime on ``preprocess.preprocess`` of each PNG, tolerance from the fp32 rule) and name it in model.json."""
    import onnxruntime as ort

    from shufflenet_deploy.preprocess import InputContract, preprocess

    meta = json.loads((model_dir / "model.json").read_text())
    if meta.get("selftest_file") and (model_dir / meta["selftest_file"]).is_file():
        return json.loads((model_dir / meta["selftest_file"]).read_text())
    session = ort.InferenceSession(str(model_dir / meta["model_file"]), providers=["CPUExecutionProvider"])
    contract = InputContract.from_dict(meta["preprocess"])
    entries = []
    for name, kind, pixels in _selftest_images():
        png = io.BytesIO()
        Image.fromarray(pixels).save(png, format="PNG")
        feed = {meta["input"]["name"]: preprocess(pixels, contract)[None]}
        logits = session.run([meta["output"]["name"]], feed)[0][0]
        entries.append({"name": name, "kind": kind, "width": pixels.shape[1], "height": pixels.shape[0],
                        "png_base64": base64.b64encode(png.getvalue()).decode(),
                        "png_sha256": hashlib.sha256(png.getvalue()).hexdigest(),
                        "pixels_sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
                        "expected": logits.astype(float).tolist(),
                        "expected_top1": int(np.argmax(logits))})  # fmt: skip
    spread = float(np.ptp([e["expected"] for e in entries]))
    atol = LOGIT_REL_TOL * spread
    selftest = {"schema": "sdeploy-selftest/1", "arch": meta["arch"], "artifact": meta["artifact"], "format": "onnx",
                "precision": meta["precision"], "model_file": meta["model_file"], "sha256": meta["sha256"],
                "output_kind": "logits",
                "tolerance": {"atol": atol, "min_cosine": MIN_COSINE, "decisive_margin": 2 * atol},
                "runs": {"warmup": 3, "timed": 10}, "images": entries}  # fmt: skip
    (model_dir / "selftest.json").write_text(json.dumps(selftest))
    (model_dir / "model.json").write_text(json.dumps({**meta, "selftest_file": "selftest.json"}, indent=2))
    return selftest


def _pixels_model(model_dir: Path, dest: Path) -> Path:
    """The bundled model behind a uint8 NHWC input that scales itself, with a Softmax on its output: what an app
    sees for input.kind "pixels" and output.kind "probabilities" (model.json schema 2)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from shufflenet_deploy.preprocess import InputContract

    meta = json.loads((model_dir / "model.json").read_text())
    contract = InputContract.from_dict(meta["preprocess"])
    model = onnx.load(str(model_dir / meta["model_file"]))
    graph = model.graph
    net_input = meta["input"]["name"]
    size = contract.img_size
    constants = {"px_scale": np.float32(contract.scale),
                 "px_mean": np.asarray(contract.mean, np.float32).reshape(1, 3, 1, 1),
                 "px_std": np.asarray(contract.std, np.float32).reshape(1, 3, 1, 1)}  # fmt: skip
    graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items())
    head = [
        helper.make_node("Cast", ["image"], ["px_f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["px_f"], ["px_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["px_nchw", "px_scale"], ["px_scaled"]),
        helper.make_node("Sub", ["px_scaled", "px_mean"], ["px_centered"]),
        helper.make_node("Div", ["px_centered", "px_std"], [net_input]),
    ]
    nodes = [*head, *graph.node, helper.make_node("Softmax", [meta["output"]["name"]], ["probabilities"], axis=1)]
    del graph.node[:]
    graph.node.extend(nodes)
    inputs = [i for i in graph.input if i.name != net_input]
    del graph.input[:]
    graph.input.extend([helper.make_tensor_value_info("image", TensorProto.UINT8, [1, size, size, 3]), *inputs])
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, meta["num_classes"]])])
    onnx.checker.check_model(model)
    dest.mkdir(parents=True)
    onnx.save(model, str(dest / "model.onnx"))
    shutil.copy2(model_dir / meta["labels_file"], dest / meta["labels_file"])
    pixels_meta = {**{k: v for k, v in meta.items() if k != "selftest_file"}, "schema": "sdeploy-app-model/2",
                   "model_file": "model.onnx", "sha256": hashlib.sha256((dest / "model.onnx").read_bytes()).hexdigest(),
                   "input": {"name": "image", "shape": [1, size, size, 3], "dtype": "uint8", "kind": "pixels",
                             "layout": "NHWC"},
                   "output": {"name": "probabilities", "shape": [1, meta["num_classes"]], "dtype": "float32",
                              "kind": "probabilities"}}  # fmt: skip
    (dest / "model.json").write_text(json.dumps(pixels_meta, indent=2))
    return dest


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _need_browser_stack()
    from shufflenet_deploy import export
    from shufflenet_deploy.apps.bundle import bundle
    from shufflenet_deploy.apps.demo_server import check_web_demo, make_server

    tmp = tmp_path_factory.mktemp("web_demo")
    result = export("v2_x0_5", "onnx", weights="random", out=tmp / "export", img_size=224, progress=False)
    assert result.ok, result.to_dict()
    root = tmp / "site"
    demo = _page_copy(root / "demo")
    bundle("web", tmp / "export", demo / "model")
    _ensure_selftest(demo / "model")
    check_web_demo(demo)
    _page_copy(root / "no_model")  # same page, nothing bundled: must explain what to run
    stale = _page_copy(root / "stale_model")  # model.json's sha256 does not match model.onnx
    shutil.copytree(demo / "model", stale / "model")
    meta = json.loads((stale / "model" / "model.json").read_text())
    (stale / "model" / "model.json").write_text(json.dumps({**meta, "sha256": "0" * 64}))
    tampered = _page_copy(root / "tampered")  # a self-test whose expected values were edited
    shutil.copytree(demo / "model", tampered / "model")
    selftest_path = tampered / "model" / meta.get("selftest_file", "selftest.json")
    selftest = json.loads(selftest_path.read_text())
    first = selftest["images"][0]
    first["expected"][first["expected_top1"]] += 10 * selftest["tolerance"]["atol"]
    selftest_path.write_text(json.dumps(selftest))
    _pixels_model(demo / "model", _page_copy(root / "pixels") / "model")
    images = _make_images(root / "demo")  # served beside the page, for classifyUrl and the drop

    server = make_server(root, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_address[1]}", root, images)
    finally:
        server.shutdown()
        server.server_close()


def _drive(scenario: str, urls: list[str], *extra: str, timeout: int = 600) -> dict:
    args = [NODE, "tests/e2e_driver.mjs", "--scenario", scenario, "--chromium", CHROMIUM]
    for url in urls:
        args += ["--url", url]
    proc = subprocess.run([*args, *extra], check=False, cwd=WEB, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"driver failed (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _clean(log: dict) -> None:
    assert not log["pageErrors"] and not log["failedRequests"] and not log["httpErrors"], log
    assert not [m for m in log["console"] if m["type"] == "error"], log["console"]


def _python_reference(model_dir: Path, image, pixels: bool = False):
    """onnxruntime on Python's input for ``image`` (a path or an HxWx3 array): (input batch, output, top-5)."""
    import onnxruntime as ort

    from shufflenet_deploy.labels import read_labels_file
    from shufflenet_deploy.predict import top_k
    from shufflenet_deploy.preprocess import InputContract, load_image, preprocess, resize_and_crop

    meta = json.loads((model_dir / "model.json").read_text())
    contract = InputContract.from_dict(meta["preprocess"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_dir / meta["model_file"]), options, providers=["CPUExecutionProvider"])
    if pixels:
        array = image if isinstance(image, np.ndarray) else load_image(image)
        batch = np.clip(np.rint(resize_and_crop(array, contract)), 0, 255).astype(np.uint8)[None]
    else:
        batch = preprocess(image, contract)[None]
    output = session.run([meta["output"]["name"]], {meta["input"]["name"]: batch})[0][0]
    labels = read_labels_file(model_dir / meta["labels_file"], meta["num_classes"])
    return batch, output, top_k(np.log(output) if pixels else output, labels, 5)


def _page_input(entry: dict) -> np.ndarray:
    dtype = "<f4" if entry["input"]["type"] == "Float32Array" else np.uint8
    return np.frombuffer(base64.b64decode(entry["input"]["b64"]), dtype)


def _agreement(page_output, python_output) -> tuple[float, float, float]:
    """(max abs diff, the fp32 limit for it, cosine) between the page's output and Python's."""
    a = np.asarray(page_output, np.float64)
    b = np.asarray(python_output, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.abs(a - b).max()), LOGIT_REL_TOL * float(b.max() - b.min()), cosine


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def _write_artifact(name: str, data: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_text(json.dumps(data, indent=2) + "\n")


@pytest.fixture(scope="module")
def classified(site):
    """One browser session: the small PNG, the alpha PNG, the 17 MP PNG, the 24 MP JPEG and a blank PNG through the
    file input, then a drop and classifyUrl of the small PNG, then the pages that must fail to load."""
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "web_demo.png"
    screenshot.unlink(missing_ok=True)
    files = [site.images[k] for k in ("small", "alpha", "huge", "jpeg24", "blank")]
    out = _drive("classify", [f"{site.base}/demo/"], *[a for f in files for a in ("--image", str(f))],
                 "--image-url", site.images["small"].name, "--screenshot", str(screenshot),
                 "--error-page", f"{site.base}/no_model/", "--error-page", f"{site.base}/stale_model/")  # fmt: skip
    assert out["ready"]["ok"], {k: v for k, v in out.items() if k not in ("images", "dropped", "classifyUrl")}
    _clean(out["log"])
    out["by_name"] = {entry["file"]: entry for entry in out["images"]}
    return out


# ---------------------------------------------------------------- the page in a real browser: tests


@pytest.mark.slow
def test_web_demo_in_chromium_matches_python(site, classified):
    out = classified
    entry = out["by_name"][site.images["small"].name]
    model_dir = site.root / "demo" / "model"
    assert out["ready"]["crossOriginIsolated"] is True, out["ready"]  # demo_server's COOP/COEP headers

    # What the user sees equals what Python computes.
    batch, logits, expected = _python_reference(model_dir, site.images["small"])
    shown = entry["dom"]["top5"]
    assert [p["label"] for p in shown] == [p.label for p in expected], (shown, expected)
    assert [p["index"] for p in shown] == [p.index for p in expected]
    prob_diff = max(abs(p["probability"] - e.probability) for p, e in zip(shown, expected))
    assert prob_diff < 1e-4, (shown, expected)
    assert entry["dom"]["ms"] > 0 and "ms per inference" in entry["dom"]["timingText"], entry["dom"]
    assert not entry["dom"]["errorVisible"] and not entry["dom"]["notice"], entry["dom"]

    # The tensor the page fed the network is Python's (decode + tiled resize + crop + normalise in the worker).
    js_input = _page_input(entry)
    assert js_input.size == batch.size, (js_input.size, batch.shape)
    input_diff = float(np.abs(js_input - batch.ravel()).max())
    assert input_diff <= INPUT_ATOL, f"browser vs Python input tensor: max abs diff {input_diff:.3e} > {INPUT_ATOL}"

    logit_diff, logit_limit, cosine = _agreement(entry["lastResult"]["logits"], logits)
    assert logit_diff <= logit_limit, f"browser vs Python logits: max abs diff {logit_diff:.3e} > {logit_limit:.3e}"
    assert cosine >= MIN_COSINE, cosine
    # Drag and drop and the automation API (fetch by URL) run the very same pipeline as the file input.
    assert out["dropped"]["source"] == "dropped.png" and out["dropped"]["logits"] == entry["lastResult"]["logits"]
    assert out["classifyUrl"]["logits"] == entry["lastResult"]["logits"]

    # Without a (matching) model the page says how to fix it and keeps its controls off.
    missing, mismatched = out["errorPages"]
    for page, hint in ((missing, "sdeploy bundle --app web"), (mismatched, "does not match the sha256")):
        assert not page["ready"]["ok"] and page["errorVisible"], page
        assert page["fileInputDisabled"] and page["chooseDisabled"], page
        assert hint in page["errorText"], page
        assert not page["pageErrors"], page

    # A real screenshot of the rendered page.
    screenshot = Path(out["screenshot"])
    width, height = _png_size(screenshot)
    assert width >= 800 and height >= 600 and screenshot.stat().st_size > 20_000, (width, height)
    with Image.open(screenshot) as shot:
        low, high = shot.convert("L").getextrema()
    assert high - low > 100, "the screenshot is blank"

    _write_artifact("web_demo.json", {
        "browser": out["browserVersion"],
        "ort_web": out["ready"]["info"]["ortVersion"],
        "accelerator": out["ready"]["info"]["accelerator"],
        "max_abs_input_diff": input_diff,
        "max_abs_logit_diff": logit_diff,
        "logit_limit": logit_limit,
        "logit_cosine": cosine,
        "max_abs_top5_probability_diff": prob_diff,
        "ms_per_inference": entry["dom"]["ms"],
        "top5": shown,
        "error_messages": [page["errorText"] for page in out["errorPages"]],
        "screenshot": str(screenshot.relative_to(REPO)),
        "images": {e["file"]: {"wall_ms": e["wallMs"], "decode_ms": e["lastResult"]["decodeMs"],
                               "preprocess_ms": e["lastResult"]["preprocessMs"], "inference_ms": e["lastResult"]["ms"],
                               "tiles": e["lastResult"]["tiles"],
                               "longest_main_thread_task_ms": max(e["longTasks"], default=0)}
                   for e in out["images"] if e["lastResult"]},
    })  # fmt: skip


@pytest.mark.slow
def test_photo_over_the_safari_canvas_limit_is_exact(site, classified):
    """17.2 MP: classified with the exact contract, read in 1024-pixel tiles (no canvas over the limit)."""
    entry = classified["by_name"][site.images["huge"].name]
    result = entry["lastResult"]
    assert (result["width"], result["height"]) == (5200, 3300) and 5200 * 3300 > SAFARI_CANVAS_LIMIT
    assert result["overCanvasLimit"] and result["tiles"] > 1, result["tiles"]
    batch, logits, expected = _python_reference(site.root / "demo" / "model", site.images["huge"])
    input_diff = float(np.abs(_page_input(entry) - batch.ravel()).max())
    assert input_diff <= INPUT_ATOL, input_diff
    assert [p["index"] for p in entry["dom"]["top5"]] == [p.index for p in expected]
    logit_diff, logit_limit, cosine = _agreement(result["logits"], logits)
    assert logit_diff <= logit_limit and cosine >= MIN_COSINE, (logit_diff, logit_limit, cosine)


@pytest.mark.slow
def test_24mp_jpeg_with_exif_rotation(site, classified):
    """A phone camera's photo: 6000x4000 stored, EXIF orientation 6, shown and classified as 4000x6000,
    without freezing the page (the work is in the worker)."""
    from shufflenet_deploy.preprocess import InputContract, normalize, resize_and_crop

    entry = classified["by_name"][site.images["jpeg24"].name]
    result = entry["lastResult"]
    assert (result["width"], result["height"]) == (4000, 6000), "EXIF orientation 6 was not applied"
    assert not entry["dom"]["errorVisible"] and "4000×6000" in entry["dom"]["previewCaption"], entry["dom"]
    batch, logits, _ = _python_reference(site.root / "demo" / "model", site.images["jpeg24"])
    js_input = _page_input(entry)
    # Chromium's and Pillow's JPEG decoders may differ by a level here and there; the rotation must not.
    input_diff = float(np.abs(js_input - batch.ravel()).max())
    meta = json.loads((site.root / "demo" / "model" / "model.json").read_text())
    contract = InputContract.from_dict(meta["preprocess"])
    with Image.open(site.images["jpeg24"]) as raw:  # the stored, unrotated pixels
        unrotated = normalize(resize_and_crop(np.asarray(raw.convert("RGB")), contract), contract)
    unrotated_diff = float(np.abs(js_input - unrotated.ravel()).max())
    assert input_diff <= 0.05 < unrotated_diff, (input_diff, unrotated_diff)
    _, _, cosine = _agreement(result["logits"], logits)
    assert cosine >= 0.999, cosine
    # The page stays responsive: no main-thread task anywhere near the decode + preprocess time.
    longest = max(entry["longTasks"], default=0)
    assert longest < 200, f"the main thread was blocked for {longest:.0f} ms"
    classified.setdefault("jpeg_input_diff", input_diff)


@pytest.mark.slow
def test_image_with_alpha_is_flagged(site, classified):
    """A canvas cannot return colours under transparent pixels: the page classifies what it can read and says so."""
    from shufflenet_deploy.preprocess import InputContract, preprocess

    entry = classified["by_name"][site.images["alpha"].name]
    assert "transparent pixels" in entry["dom"]["notice"], entry["dom"]
    assert "transparent" in entry["dom"]["summary"], entry["dom"]["summary"]
    meta = json.loads((site.root / "demo" / "model" / "model.json").read_text())
    contract = InputContract.from_dict(meta["preprocess"])
    with Image.open(site.images["alpha"]) as image:
        rgba = np.asarray(image.convert("RGBA"))
    browser_view = np.where(rgba[..., 3:] == 255, rgba[..., :3], 0).astype(np.uint8)  # transparent pixels read as black
    js_input = _page_input(entry)
    assert float(np.abs(js_input - preprocess(browser_view, contract).ravel()).max()) <= INPUT_ATOL
    # ...which is not Python's contract (alpha dropped, stored colours kept): hence the notice.
    assert float(np.abs(js_input - preprocess(rgba[..., :3], contract).ravel()).max()) > 0.1


@pytest.mark.slow
def test_blank_readback_is_refused(site, classified):
    """An image that reads back as all transparent black (a phone's failed canvas readback looks the same) is
    refused with a message, never classified as a black image."""
    entry = classified["by_name"][site.images["blank"].name]
    assert entry["lastResult"] is None, "a blank readback was classified"
    assert entry["dom"]["errorVisible"] and "Nothing was classified" in entry["dom"]["errorText"], entry["dom"]
    assert entry["dom"]["summary"].startswith("Not classified"), entry["dom"]["summary"]


@pytest.mark.slow
def test_pixels_input_and_probabilities_in_chromium(site):
    """model.json schema 2: a uint8 NHWC "pixels" input (no normalisation in JS) and a "probabilities" output
    (no softmax in JS)."""
    out = _drive("classify", [f"{site.base}/pixels/"], "--image", str(site.images["small"]))
    assert out["ready"]["ok"], out["ready"]
    _clean(out["log"])
    assert out["ready"]["info"]["inputKind"] == "pixels" and out["ready"]["info"]["outputKind"] == "probabilities"
    entry = out["images"][0]
    model_dir = site.root / "pixels" / "model"
    batch, probabilities, expected = _python_reference(model_dir, site.images["small"], pixels=True)
    js_input = _page_input(entry)
    assert js_input.dtype == np.uint8 and js_input.size == batch.size
    levels = np.abs(js_input.astype(int) - batch.ravel().astype(int))
    # Equal bytes, but for a value within an ulp of a rounding tie (float64 sums in another order).
    assert levels.max() <= 1 and np.count_nonzero(levels) <= 3, (levels.max(), np.count_nonzero(levels))
    output = np.asarray(entry["lastResult"]["output"])
    assert abs(output.sum() - 1) < 1e-4 and np.abs(output - probabilities).max() < 1e-3
    assert [p["index"] for p in entry["dom"]["top5"]] == [p.index for p in expected]
    for shown in entry["dom"]["top5"]:  # the shown probability is the model's own output, not a softmax of it
        assert abs(shown["probability"] - output[shown["index"]]) < 1e-7, shown


@pytest.mark.slow
def test_keyboard_only(site):
    out = _drive("keyboard", [f"{site.base}/demo/"], "--image", str(site.images["small"]))
    assert out["ready"]["ok"], out["ready"]
    _clean(out["log"])
    assert out["fileInputDisplay"] != "none"
    stops = [stop["id"] for stop in out["tabStops"]]
    assert stops.index("dropzone") < stops.index("choose-button") < stops.index("selftest-button"), stops
    for stop in out["tabStops"]:
        if stop["id"] in ("dropzone", "choose-button", "selftest-button"):
            assert stop["outline"] != "none", stop  # the focus is visible
    _, _, expected = _python_reference(site.root / "demo" / "model", site.images["small"])
    for n, opened in enumerate(out["opened"], start=1):
        assert opened["opened"], opened  # Enter and Space on the button and on the drop zone open the chooser
        assert opened["count"] == n and opened["top1"] == expected[0].label, opened
        assert opened["summary"].startswith(f"{site.images['small'].name}: {expected[0].label}"), opened
        assert expected[0].label in opened["previewLabel"], opened
        assert opened["scrollY"] == 0, opened  # Space did not scroll the page
    assert out["dom"]["summaryLive"] == "polite" and out["dom"]["previewRole"] == "img"


@pytest.mark.slow
def test_phone_viewport(site, classified):
    screenshot = ARTIFACTS / "web_demo_mobile.png"
    screenshot.unlink(missing_ok=True)
    out = _drive("mobile", [f"{site.base}/demo/"], "--image", str(site.images["small"]),
                 "--screenshot", str(screenshot))  # fmt: skip
    assert out["ready"]["ok"], out["ready"]
    _clean(out["log"])
    layout = out["layout"]
    assert layout["devicePixelRatio"] == 3 and layout["innerWidth"] == 390, layout
    assert layout["scrollWidth"] <= layout["innerWidth"], f"the page scrolls sideways on a phone: {layout}"
    for control in ("choose", "selftest"):
        assert layout[control]["height"] >= 44 and layout[control]["right"] <= layout["innerWidth"], layout
    assert layout["preview"]["right"] <= layout["innerWidth"], layout
    assert layout["previewCanvas"]["width"] > layout["preview"]["width"], layout  # sharp on a 3x screen
    desktop = classified["by_name"][site.images["small"].name]
    assert [p["index"] for p in out["dom"]["top5"]] == [p["index"] for p in desktop["dom"]["top5"]]
    width, _ = _png_size(screenshot)
    assert width == 390 * 3


@pytest.mark.slow
def test_selftest_in_chromium(site):
    """The Self-test button runs selftest.json through the page's own path; the report downloads; a tampered
    self-test (expected values edited) FAILs."""
    out = _drive("selftest", [f"{site.base}/demo/", f"{site.base}/tampered/"])
    good, tampered = out["runs"]
    for run in (good, tampered):
        assert run["ready"]["ok"], run["ready"]
        _clean(run["log"])
    model_dir = site.root / "demo" / "model"
    meta = json.loads((model_dir / "model.json").read_text())
    selftest = json.loads((model_dir / meta["selftest_file"]).read_text())
    report = good["report"]
    assert not good["linkVisibleBefore"], "the report link shows before any self-test ran"
    assert good["downloadName"].startswith("device-report-web-") and good["downloadName"].endswith(".json")
    assert report["schema"] == "sdeploy-device-report/1" and report["app"] == "web"
    assert report["sha256"] == selftest["sha256"] == meta["sha256"]
    assert report["model_sha256"] == hashlib.sha256((model_dir / meta["model_file"]).read_bytes()).hexdigest()
    assert report["runtime"].startswith("onnxruntime-web ") and report["accelerator"].startswith("wasm, ")
    assert report["device"].startswith("Chrome ") and report["error"] is None
    assert report["verdict"] == "PASS", {k: v for k, v in report.items() if k != "images"}
    assert good["verdictText"].startswith("PASS") and "Max abs error" in good["metricsText"]
    assert report["median_ms"] > 0 and report["max_abs_error"] <= selftest["tolerance"]["atol"]
    assert report["min_cosine"] >= selftest["tolerance"]["min_cosine"] and report["top1_agreement"] == 1.0
    assert [i["name"] for i in report["images"]] == [i["name"] for i in selftest["images"]]
    for mine, theirs in zip(report["images"], selftest["images"]):
        assert mine["png_sha256"] == theirs["png_sha256"] and mine["pixels_sha256"] == theirs.get("pixels_sha256")
        assert mine["expected"] == theirs["expected"] and len(mine["output"]) == len(theirs["expected"])
        # Each output is the page's own: recompute with onnxruntime on Python's input for the same PNG.
        png = np.asarray(Image.open(io.BytesIO(base64.b64decode(theirs["png_base64"]))).convert("RGB"))
        _, logits, _ = _python_reference(model_dir, png)
        diff, limit, cosine = _agreement(mine["output"], logits)
        assert diff <= limit and cosine >= MIN_COSINE, (mine["name"], diff, limit, cosine)
    bad = tampered["report"]
    assert bad["verdict"] == "FAIL" and tampered["verdictText"].startswith("FAIL"), bad["verdict"]
    assert bad["max_abs_error"] > selftest["tolerance"]["atol"]
    # The reports go back to the development machine: verify judges them itself, the tampered one included.
    export_dir = site.root.parent / "export"
    for name, data in (("good", report), ("tampered", bad)):
        (site.root.parent / f"{name}.json").write_text(json.dumps(data))
    result = run_cli("verify", export_dir, "--samples", "1", "--device-report", site.root.parent / "good.json",
                     "--json", "-")  # fmt: skip
    assert result.exit_code == 0, result.stdout[-2000:] + result.stderr
    rows = json.loads(result.stdout)["runtimes"]
    assert rows[-1]["runtime"].startswith("web · Chrome ") and rows[-1]["status"] == "pass", rows[-1]
    result = run_cli("verify", export_dir, "--samples", "1", "--device-report", site.root.parent / "tampered.json")
    assert result.exit_code == 1 and "expected values differ from eager PyTorch" in result.stdout, result.stdout
    _write_artifact("web_demo_selftest.json", {
        "report": {k: v for k, v in report.items() if k != "images"}, "tampered_verdict": bad["verdict"],
        "tampered_max_abs_error": bad["max_abs_error"], "wall_ms": good["wallMs"],
    })  # fmt: skip


@pytest.mark.slow
def test_wasm_threads_speedup(site):
    """COOP/COEP make the page cross-origin isolated, so onnxruntime-web can run wasm threads: the default page uses
    min(4, cores - 1); measure the median inference time with 2 threads (at least) against 1."""
    runs = "30"
    threads = max(2, min(4, os.cpu_count() or 1))
    urls = [f"{site.base}/demo/", f"{site.base}/demo/?threads=1", f"{site.base}/demo/?threads={threads}"]
    out = _drive("threads", urls, "--image", str(site.images["small"]), "--runs", runs)
    default, single, threaded = out["runs"]
    cores = default["ready"]["info"]["cores"]  # navigator.hardwareConcurrency
    for run in out["runs"]:
        assert run["ready"]["ok"] and run["ready"]["crossOriginIsolated"], run["ready"]
        _clean(run["log"])
    assert default["ready"]["info"]["threads"] == max(1, min(4, cores - 1)), default["ready"]["info"]
    assert single["ready"]["info"]["threads"] == 1 and threaded["ready"]["info"]["threads"] == threads
    for run in (default, threaded):
        logits = run["classified"]["lastResult"]["logits"]
        diff, limit, cosine = _agreement(logits, single["classified"]["lastResult"]["logits"])
        assert diff <= limit and cosine >= MIN_COSINE
    summary = {
        "browser": out["browserVersion"], "hardware_concurrency": cores, "timed_runs": int(runs),
        "load_average_1min": os.getloadavg()[0],
        "default_threads": default["ready"]["info"]["threads"], "median_ms_default": default["benchmark"]["median_ms"],
        "threads": threads, "median_ms_threads": threaded["benchmark"]["median_ms"],
        "median_ms_1_thread": single["benchmark"]["median_ms"],
        "speedup": single["benchmark"]["median_ms"] / threaded["benchmark"]["median_ms"],
    }  # fmt: skip
    _write_artifact("web_demo_threads.json", summary)
    print(json.dumps(summary))


@pytest.mark.slow
def test_peak_memory_24mp(site):
    """Peak memory of the page's renderer process while it classifies the 24 MP JPEG (written to test-artifacts/)."""
    out = _drive("memory", [f"{site.base}/demo/"], "--image", str(site.images["jpeg24"]))
    run = out["runs"][0]
    assert run["ready"]["ok"], run["ready"]
    _clean(run["log"])
    assert run["classified"]["lastResult"]["width"] == 4000
    summary = {
        "browser": out["browserVersion"], "image": "6000x4000 JPEG (24 MP), EXIF orientation 6",
        "renderer_peak_rss_mb": max((r["peakRssMB"] for r in run["renderer"]), default=None),
        "renderer_peak_rss_before_image_mb": max((r["peakRssMB"] for r in run["rendererBefore"]), default=None),
        "page_js_heap_used_mb": {"before": run["jsHeapBeforeMB"], "peak_sampled": run["jsHeapPeakSampledMB"],
                                 "after": run["jsHeapAfterMB"]},
        "user_agent_specific_memory_mb": run["userAgentSpecificMemoryMB"],
        "classify_wall_ms": run["classified"]["wallMs"],
    }  # fmt: skip
    _write_artifact("web_demo_memory.json", summary)
    print(json.dumps(summary))
    if summary["renderer_peak_rss_mb"] is not None:
        # The decoded bitmap alone is 96 MB; a full-size canvas plus its getImageData copy would add 192 MB more.
        assert summary["renderer_peak_rss_mb"] < 1024, summary
