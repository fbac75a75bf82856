"""The Android demo (android_demo/): its pure-Kotlin core against Python's golden vectors, plus static checks.

The Android build itself needs Google's Maven repository and the Android SDK, so it is not run here.
What can run on a plain JVM is: the app's ``dev.sdeploy.demo.core`` package (model.json parsing,
preprocessing, softmax/top-k, labels, EXIF orientation), which has no android/androidx imports and
compiles with Debian's ``kotlinc`` 1.3, and its junit4 tests under ``app/src/test``.

* ``test_kotlin_core_matches_python`` compiles the core and the tests in one ``kotlinc`` call, runs
  ``org.junit.runner.JUnitCore`` with a fresh ``write_golden`` directory (its contracts plus the
  model.json contract of every V2 arch, bundled with ``bundle("android", ...)``) and v2_x0_5's
  model.json, and requires every test to pass (input
  tensors within 1e-5, top-k indices equal, probabilities within 1e-6, labels equal, model.json
  fields equal). A negative control then shifts one golden tensor value by 1e-4: the same tests
  must fail. Summary: test-artifacts/android_demo.json.
* The other tests check the Gradle files pin pytorch_android_lite 1.13.1, the core imports nothing
  from Android, and the project has the files Android Studio expects.

Needs ``kotlinc`` on PATH and junit4 + hamcrest jars (Debian/Ubuntu: ``apt-get install kotlin junit4``);
without kotlinc the Kotlin test is skipped, unless SDEPLOY_REQUIRE_ANDROID_DEMO=1 turns the skip into
a failure.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
ANDROID = REPO / "android_demo"
APP = ANDROID / "app"
MAIN_JAVA = APP / "src/main/java/dev/sdeploy/demo"
CORE = MAIN_JAVA / "core"
CORE_TESTS = APP / "src/test/java/dev/sdeploy/demo/core"
ASSETS = APP / "src/main/assets"
ARTIFACTS = REPO / "test-artifacts"

KOTLINC = shutil.which("kotlinc")
JAVA = shutil.which("java")
JUNIT_JARS = [Path(os.environ.get("SDEPLOY_JUNIT_JAR", "/usr/share/java/junit4.jar")),
              Path(os.environ.get("SDEPLOY_HAMCREST_JAR", "/usr/share/java/hamcrest-core.jar"))]  # fmt: skip
LITE_VERSION = "1.13.1"
GENERATED_ASSETS = ["model.ptl", "labels.txt", "model.json"]
TAMPER = 1e-4  # the negative control's shift; the Kotlin tests allow 1e-5
PREPROCESS_LINE = r"preprocess \S+ +\S+ +\d+x\d+ -> .* max \|diff\| (\S+)$"  # one per image x contract


def _missing(reason: str) -> None:
    if os.environ.get("SDEPLOY_REQUIRE_ANDROID_DEMO") == "1":
        pytest.fail(f"{reason} (SDEPLOY_REQUIRE_ANDROID_DEMO=1 requires the Android demo tests to run)")
    pytest.skip(reason)


def _strip_comments(kotlin: str) -> str:
    kotlin = re.sub(r"/\*.*?\*/", "", kotlin, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", kotlin)


# ---------------------------------------------------------------- static checks


def test_gradle_pins_the_last_lite_runtime():
    from shufflenet_deploy.targets.torchscript import ANDROID_LITE_1_13_BYTECODE

    app_gradle = (APP / "build.gradle.kts").read_text()
    code = _strip_comments(app_gradle)
    assert re.findall(r'"(org\.pytorch:[^"]+)"', code) == [f"org.pytorch:pytorch_android_lite:{LITE_VERSION}"]
    assert re.search(r"\bcompileSdk\s*=\s*34\b", code), "compileSdk must be 34"
    assert re.search(r"\bminSdk\s*=\s*24\b", code), "minSdk must be 24"
    assert re.search(r'noCompress\s*\+=\s*(listOf\()?"ptl"', code), "model.ptl must be stored uncompressed"
    for gradle in ANDROID.rglob("*.gradle.kts"):
        if gradle != APP / "build.gradle.kts":
            assert "org.pytorch" not in _strip_comments(gradle.read_text()), f"{gradle} pulls another PyTorch runtime"
    # The runtime the app pins reads bytecode <= 8: the version sdeploy bundle exports for it.
    assert ANDROID_LITE_1_13_BYTECODE == 8
    root_gradle = _strip_comments((ANDROID / "build.gradle.kts").read_text())
    assert re.search(r'id\("com\.android\.application"\) version "8\.', root_gradle)
    assert re.search(r'id\("org\.jetbrains\.kotlin\.android"\) version "1\.9\.', root_gradle)
    wrapper = (ANDROID / "gradle/wrapper/gradle-wrapper.properties").read_text()
    assert re.search(r"gradle-8\.[2-9][.\d]*-bin\.zip", wrapper), "AGP 8.2 needs Gradle 8.2+"


def test_kotlin_core_imports_nothing_from_android():
    files = sorted(CORE.glob("*.kt"))
    assert {f.name for f in files} >= {"Json.kt", "Preprocess.kt", "TopK.kt", "Labels.kt", "ModelInfo.kt"}
    for file in files:
        code = _strip_comments(file.read_text())
        assert re.search(r"^package dev\.sdeploy\.demo\.core$", code, re.MULTILINE), f"{file.name}: wrong package"
        imports = re.findall(r"^\s*import\s+([\w.]+)", code, re.MULTILINE)
        banned = [i for i in imports if i.split(".")[0] in ("android", "androidx", "kotlinx") or
                  i.startswith(("org.json", "org.pytorch", "dev.sdeploy.demo.R"))]  # fmt: skip
        assert not banned, f"{file.name} imports {banned}: the core must compile without Android"
        assert not re.search(r"\b(android|androidx|org\.pytorch)\.[a-z]", code), f"{file.name} names an Android API"


def test_android_project_layout():
    for path in ["settings.gradle.kts", "build.gradle.kts", "gradle.properties", "README.md",
                 "gradle/wrapper/gradle-wrapper.properties", "app/build.gradle.kts",
                 "app/src/main/AndroidManifest.xml", "app/src/main/res/layout/activity_main.xml",
                 "app/src/main/java/dev/sdeploy/demo/MainActivity.kt"]:  # fmt: skip
        assert (ANDROID / path).is_file(), f"android_demo/{path} is missing"
    with Image.open(ASSETS / "sample.png") as sample:
        assert sample.format == "PNG" and min(sample.size) >= 224

    ignored = {line.strip() for line in (ANDROID / ".gitignore").read_text().splitlines()}
    ignored.discard("")
    ignored = {line for line in ignored if not line.startswith("#")}
    generated = {f"app/src/main/assets/{name}" for name in GENERATED_ASSETS}
    assert ignored == generated | {"build/", ".gradle/", "local.properties", "*.iml", ".idea/"}

    app_code = "\n".join(f.read_text() for f in MAIN_JAVA.glob("*.kt"))
    apis = ["PickVisualMedia", "TakePicture", "LiteModuleLoader.load", "Tensor.fromBlob", "ExifInterface", "getPixels",
            "Preprocess.preprocess", "TopK.predictions", "ModelInfo.parse", "Labels.parse"]  # fmt: skip
    for api in apis:
        assert api in app_code, f"the app does not use {api}"
    manifest = (APP / "src/main/AndroidManifest.xml").read_text()
    assert "androidx.core.content.FileProvider" in manifest
    assert re.search(r'android\.hardware\.camera\.any"\s+android:required="false"', manifest)


# ---------------------------------------------------------------- Kotlin core vs Python golden vectors


def _kotlin_test_classes() -> list[str]:
    classes = []
    for file in sorted(CORE_TESTS.glob("*.kt")):
        text = file.read_text()
        if "@Test" in text:
            package = re.search(r"^package ([\w.]+)", text, re.MULTILINE).group(1)
            classes.append(f"{package}.{file.stem}")
    return classes


def _count_kotlin_tests() -> int:
    return sum(len(re.findall(r"^\s*@Test\b", f.read_text(), re.MULTILINE)) for f in CORE_TESTS.glob("*.kt"))


def _compile(out_dir: Path) -> Path:
    """The core and its tests, in one kotlinc call (kotlinc 1.3 takes seconds just to start)."""
    jar = out_dir / "android_core_tests.jar"
    sources = sorted(CORE.glob("*.kt")) + sorted(CORE_TESTS.glob("*.kt"))
    cmd = [KOTLINC, "-jvm-target", "1.8", "-nowarn", "-cp", os.pathsep.join(map(str, JUNIT_JARS)),
           *map(str, sources), "-include-runtime", "-d", str(jar)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0 and jar.is_file(), f"kotlinc failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return jar


def _junit(jar: Path, classes: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    classpath = os.pathsep.join(map(str, [jar, *JUNIT_JARS]))
    return subprocess.run(
        [JAVA, "-cp", classpath, "org.junit.runner.JUnitCore", *classes],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, **env, "SDEPLOY_REQUIRE_GOLDEN": "1"},
    )  # fmt: skip


def _bundle_models(tmp: Path, export_cache) -> dict[str, tuple[Path, dict]]:
    """Every V2 arch exported for the lite interpreter and bundled the way the app gets it."""
    from torch.jit.mobile import _get_model_bytecode_version

    from shufflenet_deploy.apps.bundle import APPS, bundle
    from shufflenet_deploy.nets import list_models
    from shufflenet_deploy.targets.torchscript import ANDROID_LITE_1_13_BYTECODE

    bundles = {}
    for arch in list_models("v2"):
        export_dir = export_cache(arch, "torchscript", **APPS["android"].export_options)
        assets = tmp / f"assets-{arch}"
        bundled = bundle("android", export_dir, assets)
        assert sorted(bundled.files) == sorted(GENERATED_ASSETS)
        assert _get_model_bytecode_version(str(assets / "model.ptl")) <= ANDROID_LITE_1_13_BYTECODE
        bundles[arch] = (assets / "model.json", bundled.model_json)
    return bundles


def _expectations(model_json: dict) -> str:
    """key=value lines the Kotlin ModelJsonTest compares its parse with (exact; floats as repr)."""
    pre = model_json["preprocess"]
    values = {
        "arch": model_json["arch"],
        "format": model_json["format"],
        "model_file": model_json["model_file"],
        "labels_file": model_json["labels_file"],
        "num_classes": model_json["num_classes"],
        "sha256": model_json["sha256"],
        "input.name": model_json["input"]["name"],
        "input.shape": ",".join(map(str, model_json["input"]["shape"])),
        "input.dtype": model_json["input"]["dtype"],
        "output.name": model_json["output"]["name"],
        "output.shape": ",".join(map(str, model_json["output"]["shape"])),
        **{f"preprocess.{key}": pre[key] for key in
           ("img_size", "resize_size", "interpolation", "crop", "color_order", "layout", "resize")},
        "preprocess.mean": ",".join(repr(float(v)) for v in pre["mean"]),
        "preprocess.std": ",".join(repr(float(v)) for v in pre["std"]),
        "preprocess.scale": repr(float(pre["scale"])),
    }  # fmt: skip
    return "".join(f"{key}={value}\n" for key, value in values.items())


def _tamper(golden_dir: Path, out_dir: Path, image: str, contract: str) -> Path:
    """A copy of golden_dir with one value of one expected tensor shifted by TAMPER."""
    shutil.copytree(golden_dir, out_dir)
    path = out_dir / "golden.json"
    data = json.loads(path.read_text())
    case = next(c for c in data["images"] if c["name"] == image)
    entry = case["tensors"][contract]
    tensor = np.frombuffer(base64.b64decode(entry["tensor_f32le_b64"]), "<f4").copy()
    tensor[len(tensor) // 2] += np.float32(TAMPER)
    entry["tensor_f32le_b64"] = base64.b64encode(tensor.astype("<f4").tobytes()).decode()
    path.write_text(json.dumps(data))
    return out_dir


def test_kotlin_core_matches_python(tmp_path, export_cache):
    if KOTLINC is None:
        _missing("kotlinc is not on PATH (apt-get install kotlin junit4) to compile the Android demo's Kotlin core")
    assert JAVA is not None, "java is not on PATH"
    for jar in JUNIT_JARS:
        assert jar.is_file(), f"{jar} is missing: apt-get install junit4 (or set SDEPLOY_JUNIT_JAR)"
    from shufflenet_deploy.apps.golden import CONTRACTS, write_golden
    from shufflenet_deploy.preprocess import InputContract

    bundles = _bundle_models(tmp_path, export_cache)
    # The golden contracts plus the one each V2 arch's model.json carries: Kotlin must reproduce them all.
    contracts = {**CONTRACTS, **{arch: InputContract.from_dict(mj["preprocess"]) for arch, (_, mj) in bundles.items()}}
    golden_dir = tmp_path / "golden"
    write_golden(golden_dir, contracts)
    model_json_path, model_json = bundles["v2_x0_5"]
    expect = tmp_path / "model_expect.txt"
    expect.write_text(_expectations(model_json))
    jar = _compile(tmp_path)

    classes = _kotlin_test_classes()
    env = {"SDEPLOY_GOLDEN_DIR": str(golden_dir), "SDEPLOY_MODEL_JSON": str(model_json_path),
           "SDEPLOY_MODEL_EXPECT": str(expect)}  # fmt: skip
    run = _junit(jar, classes, env)
    output = run.stdout + run.stderr
    count = _count_kotlin_tests()
    assert run.returncode == 0 and f"OK ({count} tests)" in run.stdout, f"Kotlin tests failed:\n{output}"

    diffs = [float(d) for d in re.findall(PREPROCESS_LINE, run.stdout, re.MULTILINE)]
    images = len(json.loads((golden_dir / "golden.json").read_text())["images"])
    assert len(diffs) == images * len(contracts), f"expected a line per image x contract:\n{output}"
    topk = float(re.search(r"topk: .* max probability \|diff\| (\S+)$", run.stdout, re.MULTILINE).group(1))

    # Negative control: a golden tensor off by 1e-4 must make the same Kotlin test fail, naming the case.
    tampered = _tamper(golden_dir, tmp_path / "tampered", "portrait", "imagenet_rgb")
    bad = _junit(jar, ["dev.sdeploy.demo.core.GoldenPreprocessTest"], {**env, "SDEPLOY_GOLDEN_DIR": str(tampered)})
    bad_output = bad.stdout + bad.stderr
    assert bad.returncode != 0, f"a {TAMPER} error in a golden tensor went unnoticed:\n{bad_output}"
    assert re.search(r"portrait/imagenet_rgb: max \|diff\| 1\.0\d*e-04 > 1e-05", bad_output), bad_output
    assert "Tests run: 2,  Failures: 1" in bad_output, bad_output

    ARTIFACTS.mkdir(exist_ok=True)
    summary = {
        "kotlin_tests": count,
        "test_classes": classes,
        "preprocess_tensors": len(diffs),
        "preprocess_max_abs_diff": max(diffs),
        "topk_max_probability_diff": topk,
        "model_json": {"arch": model_json["arch"], "input": model_json["input"]["shape"]},
        "contracts": sorted(contracts),
        "negative_control": f"+{TAMPER} in portrait/imagenet_rgb detected",
    }
    (ARTIFACTS / "android_demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
