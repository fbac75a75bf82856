"""The Android demo (android_demo/): its pure-Kotlin core against Python, the sampled-decode bound, and build checks.

The Android build itself needs Google's Maven repository and the Android SDK, so it is not run here
(the CI job in .github/workflows/parity.yml builds the APKs and checks their 16 KB alignment). What
runs on a plain JVM is the app's ``dev.sdeploy.demo.core`` package (model.json, engine choice,
preprocessing in every input layout, softmax/top-k, labels, EXIF orientation, the decode plan, the
self-test comparison, selftest.json and the device report), which has no android/androidx imports and
compiles with Debian's ``kotlinc`` 1.3, and its junit4 tests under ``app/src/test``.

* ``test_kotlin_core_matches_python`` compiles the core and the tests in one ``kotlinc`` call and runs
  ``JUnitCore`` with a fresh ``write_golden`` directory (its contracts plus the model.json contract of
  every V2 arch), rounded-pixel vectors this file writes (golden.json has none), and a model.json +
  selftest.json bundled by ``bundle("android", ...)``. Every test must pass: tensors within 1e-5 in
  NCHW and NHWC, pixels equal to numpy's rint, the self-test metrics within 1e-12 of
  ``selftest.compare`` with equal verdicts, model.json fields equal. The device report the Kotlin
  code writes is read back with Python's json and its metrics recomputed with ``selftest.compare``.
  Negative controls: a golden tensor off by 1e-4, a golden self-test metric off by 1e-9 and one
  golden pixel off by one must each make the Kotlin tests fail, naming the case.
* ``test_sampled_decode_bound`` emulates the app's sampled JPEG/PNG decoding in Python
  (android_demo/tools/sampled_decode_parity.py) and checks the errors against the bounds documented
  in android_demo/README.md.
* The static tests check what cannot run here: the Gradle files (engines per build variant, AGP,
  Kotlin, SDK levels), the Gradle wrapper jar against Gradle's published checksums, and that the
  Android sources use the APIs the README describes.

Needs ``kotlinc`` on PATH and junit4 + hamcrest jars (Debian/Ubuntu: ``apt-get install kotlin junit4``);
without kotlinc the Kotlin test is skipped, unless SDEPLOY_REQUIRE_ANDROID_DEMO=1 turns the skip into
a failure. The sampled-decode test needs scikit-learn (the ``test`` extra).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
ANDROID = REPO / "android_demo"
APP = ANDROID / "app"
SRC = APP / "src"
MAIN_JAVA = SRC / "main/java/dev/sdeploy/demo"
CORE = MAIN_JAVA / "core"
CORE_TESTS = SRC / "test/java/dev/sdeploy/demo/core"
ASSETS = SRC / "main/assets"
ARTIFACTS = REPO / "test-artifacts"
TOOL = ANDROID / "tools/sampled_decode_parity.py"

KOTLINC = shutil.which("kotlinc")
JAVA = shutil.which("java")
JUNIT_JARS = [Path(os.environ.get("SDEPLOY_JUNIT_JAR", "/usr/share/java/junit4.jar")),
              Path(os.environ.get("SDEPLOY_HAMCREST_JAR", "/usr/share/java/hamcrest-core.jar"))]  # fmt: skip

#: Build variant -> (its Maven artifact, the engine class in app/src/<variant>/, the API it must call).
ENGINES = {
    "executorch": ("org.pytorch:executorch-android:1.5.1", "ExecuTorchEngine", "Module.load("),
    "litert": ("com.google.ai.edge.litert:litert:2.3.0", "LiteRtEngine", "CompiledModel.create("),
    "pytorchLite": ("org.pytorch:pytorch_android_lite:1.13.1", "PyTorchLiteEngine", "LiteModuleLoader.load("),
}
#: model.json format -> the Kotlin EngineKind that runs it.
ENGINE_KINDS = {"pte": "EXECUTORCH", "torchscript-lite": "PYTORCH_LITE", "tflite": "LITERT"}
AGP, KOTLIN, GRADLE = "9.4.1", "2.4.21", "9.6.0"
#: sha256 of official gradle-wrapper.jar files, from Gradle's published list
#: (gradle/actions, sources/src/wrapper-validation/wrapper-checksums.json).
OFFICIAL_WRAPPER_JARS = {
    "55243ef57851f12b070ad14f7f5bb8302daceeebc5bce5ece5fa6edb23e1145c": "9.4.1",
    "497c8c2a7e5031f6aa847f88104aa80a93532ec32ee17bdb8d1d2f67a194a9c7": "9.5.0-9.6.1",
}
GRADLE_960_SHA256 = "bbaeb2fef8710818cf0e261201dab964c572f92b942812df0c3620d62a529a01"
GENERATED_ASSETS = ["model.pte", "model.ptl", "model.tflite", "labels.txt", "model.json", "selftest.json"]
TAMPER = 1e-4  # the negative control's shift; the Kotlin tests allow 1e-5
PREPROCESS_LINE = r"preprocess \S+ +\S+ +\d+x\d+ -> .* max \|diff\| (\S+)$"  # one per image x contract


def _missing(reason: str) -> None:
    if os.environ.get("SDEPLOY_REQUIRE_ANDROID_DEMO") == "1":
        pytest.fail(f"{reason} (SDEPLOY_REQUIRE_ANDROID_DEMO=1 requires the Android demo tests to run)")
    pytest.skip(reason)


def _strip_comments(kotlin: str) -> str:
    kotlin = re.sub(r"/\*.*?\*/", "", kotlin, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", kotlin)


def _load_tool():
    if "sampled_decode_parity" in sys.modules:
        return sys.modules["sampled_decode_parity"]
    spec = importlib.util.spec_from_file_location("sampled_decode_parity", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- build files (static: no Android SDK here)


def test_gradle_builds_one_variant_per_engine():
    code = _strip_comments((APP / "build.gradle.kts").read_text())
    deps = dict(re.findall(r'"(\w+)Implementation"\("([^"]+)"\)', code))
    assert deps == {variant: artifact for variant, (artifact, _, _) in ENGINES.items()}, deps
    # No runtime in the plain `implementation` configuration: pytorch_android_lite's own libfbjni.so
    # cannot share an APK with ExecuTorch's fbjni, and only two of the three engines are 16 KB-aligned.
    plain = re.findall(r'\bimplementation\("([^"]+)"\)', code)
    assert not [d for d in plain if d.startswith(("org.pytorch", "com.google.ai.edge", "com.facebook"))], plain
    assert re.search(r'create\("executorch"\)\s*\{[^}]*isDefault\s*=\s*true', code), (
        "executorch must be the default variant"
    )
    for variant in ENGINES:
        assert f'create("{variant}")' in code
    assert re.search(r"\bcompileSdk\s*=\s*36\b", code) and re.search(r"\btargetSdk\s*=\s*36\b", code)
    assert re.search(r"\bminSdk\s*=\s*26\b", code), "minSdk 26: ExecuTorch's native library is built for android-26"
    assert re.search(r'noCompress\s*\+=\s*listOf\("pte",\s*"ptl",\s*"tflite"\)', code)
    assert re.search(r"useLegacyPackaging\s*=\s*false", code), (
        "native libraries must stay uncompressed (16 KB zip alignment)"
    )
    for name in ("lifecycle-viewmodel-ktx", "lifecycle-runtime-ktx", "kotlinx-coroutines-android", "activity-ktx"):
        assert name in code, f"the app needs {name}"

    root = _strip_comments((ANDROID / "build.gradle.kts").read_text())
    assert re.search(rf'id\("com\.android\.application"\) version "{re.escape(AGP)}"', root)
    assert f'classpath("org.jetbrains.kotlin:kotlin-gradle-plugin:{KOTLIN}")' in root
    for gradle in [ANDROID / "build.gradle.kts", APP / "build.gradle.kts", ANDROID / "settings.gradle.kts"]:
        assert "org.jetbrains.kotlin.android" not in _strip_comments(gradle.read_text()), "AGP 9 has built-in Kotlin"
    assert "kotlinOptions" not in code, "AGP 9 removed kotlinOptions"

    # The engines' report strings name the versions the Gradle file pins.
    for variant, (artifact, engine, _) in ENGINES.items():
        version = artifact.rsplit(":", 1)[1]
        source = (SRC / variant / "java/dev/sdeploy/demo/engines" / f"{engine}.kt").read_text()
        assert re.search(rf'const val runtime = "[\w-]+ {re.escape(version)}"', source), (variant, version)


def test_gradle_wrapper_is_genuine_and_pinned():
    wrapper = ANDROID / "gradle/wrapper"
    properties = (wrapper / "gradle-wrapper.properties").read_text()
    assert f"distributionUrl=https\\://services.gradle.org/distributions/gradle-{GRADLE}-bin.zip" in properties
    assert f"distributionSha256Sum={GRADLE_960_SHA256}" in properties
    jar = (wrapper / "gradle-wrapper.jar").read_bytes()
    digest = hashlib.sha256(jar).hexdigest()
    assert digest in OFFICIAL_WRAPPER_JARS, f"gradle-wrapper.jar {digest} is not one of Gradle's published wrapper jars"
    with zipfile.ZipFile(wrapper / "gradle-wrapper.jar") as archive:
        assert "org/gradle/wrapper/GradleWrapperMain.class" in archive.namelist()
        assert "Main-Class: org.gradle.wrapper.GradleWrapperMain" in archive.read("META-INF/MANIFEST.MF").decode()
    gradlew = ANDROID / "gradlew"
    assert os.access(gradlew, os.X_OK), "gradlew must be executable"
    assert "gradle/wrapper/gradle-wrapper.jar" in gradlew.read_text()
    assert "gradle-wrapper.jar" in (ANDROID / "gradlew.bat").read_text()


def test_kotlin_core_imports_nothing_from_android():
    files = sorted(CORE.glob("*.kt"))
    assert {f.name for f in files} >= {"Json.kt", "Preprocess.kt", "TopK.kt", "Labels.kt", "ModelInfo.kt",
                                       "EngineKind.kt", "SelfTest.kt", "DecodePlan.kt"}  # fmt: skip
    for file in files:
        code = _strip_comments(file.read_text())
        assert re.search(r"^package dev\.sdeploy\.demo\.core$", code, re.MULTILINE), f"{file.name}: wrong package"
        imports = re.findall(r"^\s*import\s+([\w.]+)", code, re.MULTILINE)
        banned = [i for i in imports if i.split(".")[0] in ("android", "androidx", "kotlinx") or
                  i.startswith(("org.json", "org.pytorch", "com.google", "dev.sdeploy.demo.R"))]  # fmt: skip
        assert not banned, f"{file.name} imports {banned}: the core must compile without Android"
        assert not re.search(r"\b(android|androidx|org\.pytorch)\.[a-z]", code), f"{file.name} names an Android API"


def test_android_sources_follow_the_readme():
    for path in ["settings.gradle.kts", "build.gradle.kts", "gradle.properties", "README.md", "gradlew", "gradlew.bat",
                 "gradle/wrapper/gradle-wrapper.properties", "app/build.gradle.kts", "app/src/main/AndroidManifest.xml",
                 "app/src/main/res/layout/activity_main.xml", "app/src/main/res/xml/file_paths.xml", "tools/check_16kb.sh"]:  # fmt: skip
        assert (ANDROID / path).is_file(), f"android_demo/{path} is missing"
    with Image.open(ASSETS / "sample.png") as sample:
        assert sample.format == "PNG" and min(sample.size) >= 224

    ignored = {line.strip() for line in (ANDROID / ".gitignore").read_text().splitlines()}
    ignored = {line for line in ignored if line and not line.startswith("#")}
    generated = {f"app/src/main/assets/{name}" for name in GENERATED_ASSETS}
    assert ignored == generated | {"build/", ".gradle/", ".kotlin/", "local.properties", "*.iml", ".idea/"}

    main = {f.name: _strip_comments(f.read_text()) for f in MAIN_JAVA.rglob("*.kt") if "core" not in f.parts}
    app_code = "\n".join(main.values())
    # The engines live only in their build variant's source set; the shared code never imports a runtime.
    assert not re.search(r"import (org\.pytorch|com\.google\.ai\.edge)", app_code)
    for variant, (_, engine, api) in ENGINES.items():
        source = _strip_comments((SRC / variant / "java/dev/sdeploy/demo/engines" / f"{engine}.kt").read_text())
        assert api in source and f"class {engine}(model: File) : Engine" in source, variant
        assert re.search(r"val kind = EngineKind\.\w+", source)
    apis = ["PickVisualMedia", "TakePicture", "ExifInterface", "getPixels", "inSampleSize", "DecodePlan.sampleSize",
            "TensorInput.fromImage", "TopK.predictions", "ModelInfo.parse", "Labels.parse", "SelfTestSpec.parse",
            "SelfTest.compare", "DeviceReport.build", "Intent.ACTION_SEND", "FileProvider.getUriForFile",
            "enableEdgeToEdge()", "setOnApplyWindowInsetsListener", "repeatOnLifecycle(Lifecycle.State.STARTED)",
            "MutableStateFlow", "viewModelScope.launch", "Dispatchers.Default", "by viewModels()"]  # fmt: skip
    for api in apis:
        assert api in app_code, f"the app does not use {api}"
    # The old process-wide singleton and Handler are gone; failures of every kind reach the screen.
    assert not re.search(r"\bobject Engine\b|\bHandler\(|Looper", app_code)
    assert "catch (e: Throwable)" in main["MainViewModel.kt"] and "LinkageError" in main["SelfTestRunner.kt"]
    manifest = (SRC / "main/AndroidManifest.xml").read_text()
    assert "largeHeap" not in manifest, "sampled decoding replaced android:largeHeap"
    assert "androidx.core.content.FileProvider" in manifest
    assert re.search(r'android\.hardware\.camera\.any"\s+android:required="false"', manifest)
    paths = (SRC / "main/res/xml/file_paths.xml").read_text()
    assert 'path="reports/"' in paths and 'path="camera/"' in paths
    assert "NoActionBar" in (SRC / "main/res/values/themes.xml").read_text()


def test_sample_size_rule_is_the_same_in_kotlin_and_python():
    tool = _load_tool()
    kotlin = (CORE_TESTS / "DecodePlanTest.kt").read_text()
    jpeg_cases = [tuple(map(int, m)) for m in re.findall(r"listOf\((\d+), (\d+), (\d+), (\d+)\)", kotlin)]
    other_cases = [tuple(map(int, m)) for m in re.findall(r"listOf\((\d+), (\d+), (\d+)\)", kotlin)]
    python_cases = {(w, h, r, jpeg): s for w, h, r, jpeg, s in tool.SAMPLE_SIZE_CASES}
    kotlin_cases = {
        **{(w, h, r, True): s for w, h, r, s in jpeg_cases},
        **{(w, h, 256, False): s for w, h, s in other_cases},
    }
    assert kotlin_cases == python_cases
    for (width, height, resize, jpeg), sample in python_cases.items():
        assert tool.sample_size(width, height, resize, jpeg) == sample, (width, height, resize, jpeg)
    constants = (CORE / "DecodePlan.kt").read_text()
    for name, value in [("MIN_SHORTER_FACTOR", tool.MIN_SHORTER_FACTOR), ("MAX_SAMPLE_SIZE", tool.MAX_SAMPLE_SIZE)]:
        assert re.search(rf"const val {name} = {value}\b", constants), name
    assert "const val MAX_PIXELS = 16_000_000L" in constants and tool.MAX_PIXELS == 16_000_000


# ---------------------------------------------------------------- sampled decoding: emulated parity cost


def _documented_bounds() -> dict[str, float]:
    """The `<!-- bound NAME VALUE -->` markers of android_demo/README.md's parity table."""
    text = (ANDROID / "README.md").read_text()
    bounds = {name: float(value) for name, value in re.findall(r"<!-- bound (\S+) (\S+) -->", text)}
    assert bounds, "android_demo/README.md documents no sampled-decode bounds"
    return bounds


def test_sampled_decode_bound(tmp_path):
    pytest.importorskip("sklearn", reason="the emulation's photos come with scikit-learn (the test extra)")
    tool = _load_tool()
    # The emulation is exact where it can be: point sampling picks the pixels Skia picks.
    pixels = np.arange(10 * 9 * 3, dtype=np.uint8).reshape(10, 9, 3)
    assert np.array_equal(tool.point_sample(pixels, 4), pixels[[2, 6]][:, [2, 6]])
    bounds = _documented_bounds()
    rows = tool.measure(quick=True, workdir=tmp_path)
    jpeg = [r for r in rows if r.file == "jpg" and r.model != "digits" and r.sample > 1]
    png = [r for r in rows if r.file == "png" and r.sample > 1]
    digits = [r for r in rows if r.model == "digits"]
    assert jpeg and png and digits and all(r.sample == 8 for r in digits)
    measured = {
        "jpeg_pixel_rms": max(r.pixel_rms for r in jpeg),
        "jpeg_pixel_max": max(r.pixel_max for r in jpeg),
        "png_pixel_rms": max(r.pixel_rms for r in png),
        "digits_rel": max(r.rel for r in digits),
        "digits_top1_changes": sum(not r.top1_same for r in digits),
    }
    for name, value in measured.items():
        assert value <= bounds[name], f"{name}: measured {value:.4g} > documented {bounds[name]:.4g}"
    # Sampling really happened and really costs something (the emulation is not a no-op).
    assert measured["jpeg_pixel_rms"] > 0.05 and measured["png_pixel_rms"] > 0.05 and measured["digits_rel"] > 0
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "android_sampled_decode.json").write_text(
        json.dumps({"measured": measured, "bounds": bounds}, indent=2)
    )


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
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
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
    """Every V2 arch exported for the app's default engine and bundled as the app gets it (v2_x0_5 with its self-test)."""
    from shufflenet_deploy.apps.bundle import app_target, bundle
    from shufflenet_deploy.nets import list_models

    target, binding = app_target("android", None)
    bundles = {}
    for arch in list_models("v2"):
        export_dir = export_cache(arch, target, **binding.export_options)
        assets = tmp / f"assets-{arch}"
        bundled = bundle("android", export_dir, assets, target=target, selftest=arch == "v2_x0_5")
        assert bundled.model_json["format"] in ENGINE_KINDS, bundled.model_json["format"]
        # docs/app-protocol.md: the app applies softmax to `logits` only; any other kind is refused on the phone.
        assert bundled.model_json["output"].get("kind") in ("logits", "probabilities"), (
            f"model.json output.kind is {bundled.model_json['output'].get('kind')!r}; docs/app-protocol.md allows "
            "'logits' or 'probabilities' (the Android app refuses anything else)"
        )
        assert set(bundled.files) <= set(GENERATED_ASSETS), bundled.files
        bundles[arch] = (assets / "model.json", bundled.model_json)
    return bundles


def _expectations(model_json: dict) -> str:
    """key=value lines the Kotlin ModelJsonTest compares its parse with (exact; floats as repr)."""
    pre, inp, out = model_json["preprocess"], model_json["input"], model_json["output"]
    pixels = inp.get("kind") == "pixels"
    values = {
        "schema": model_json["schema"],
        "arch": model_json["arch"],
        "format": model_json["format"],
        "engine": ENGINE_KINDS[model_json["format"]],
        "model_file": model_json["model_file"],
        "selftest_file": model_json.get("selftest_file") or "null",
        "labels_file": model_json["labels_file"],
        "num_classes": model_json["num_classes"],
        "sha256": model_json["sha256"],
        "input.name": inp["name"],
        "input.shape": ",".join(str(d) if isinstance(d, int) else "-1" for d in inp["shape"]),
        "input.dtype": inp["dtype"],
        "input.kind": inp.get("kind", "tensor"),
        "input.layout": inp.get("layout", "NHWC" if pixels else "NCHW"),
        "output.name": out["name"],
        "output.shape": ",".join(str(d) if isinstance(d, int) else "-1" for d in out["shape"]),
        "output.kind": out.get("kind", "logits"),
        **{f"preprocess.{key}": pre[key] for key in
           ("img_size", "resize_size", "interpolation", "crop", "color_order", "layout", "resize")},
        "preprocess.mean": ",".join(repr(float(v)) for v in pre["mean"]),
        "preprocess.std": ",".join(repr(float(v)) for v in pre["std"]),
        "preprocess.scale": repr(float(pre["scale"])),
    }  # fmt: skip
    return "".join(f"{key}={value}\n" for key, value in values.items())


def _write_golden_pixels(golden_dir: Path) -> Path:
    """golden_pixels.json: each golden image x contract resized by the package and rounded with numpy's rint.

    golden.json has no 8-bit vectors, so they are made here with ``preprocess.resize_and_crop``.
    ``ambiguous`` lists values within 1e-9 of a .5 tie, where float64 summation order may round either way.
    """
    from shufflenet_deploy.preprocess import InputContract, resize_and_crop

    golden = json.loads((golden_dir / "golden.json").read_text())
    contracts = {key: InputContract.from_dict(value) for key, value in golden["contracts"].items()}
    images = {}
    for case in golden["images"]:
        rgba = np.frombuffer(base64.b64decode(case["rgba_b64"]), np.uint8).reshape(case["height"], case["width"], 4)
        images[case["name"]] = {}
        for key, contract in contracts.items():
            resized = resize_and_crop(rgba[..., :3], contract)
            rounded = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
            ties = np.flatnonzero(np.abs(resized - np.floor(resized) - 0.5).ravel() < 1e-9)
            images[case["name"]][key] = {"rgb_hwc_u8_b64": base64.b64encode(rounded.tobytes()).decode(),
                                         "ambiguous": ties.tolist()}  # fmt: skip
    path = golden_dir / "golden_pixels.json"
    path.write_text(json.dumps({"schema": "sdeploy-android-golden-pixels/1", "images": images}))
    return path


def _tampered(golden_dir: Path, out_dir: Path, edit) -> Path:
    """A copy of golden_dir with ``edit(golden, pixels)`` applied to the parsed golden.json and golden_pixels.json."""
    shutil.copytree(golden_dir, out_dir)
    golden, pixels = (json.loads((out_dir / name).read_text()) for name in ("golden.json", "golden_pixels.json"))
    edit(golden, pixels)
    (out_dir / "golden.json").write_text(json.dumps(golden))
    (out_dir / "golden_pixels.json").write_text(json.dumps(pixels))
    return out_dir


def _shift_tensor(golden: dict, pixels: dict) -> None:
    entry = next(c for c in golden["images"] if c["name"] == "portrait")["tensors"]["imagenet_rgb"]
    tensor = np.frombuffer(base64.b64decode(entry["tensor_f32le_b64"]), "<f4").copy()
    tensor[len(tensor) // 2] += np.float32(TAMPER)
    entry["tensor_f32le_b64"] = base64.b64encode(tensor.astype("<f4").tobytes()).decode()


def _shift_metric(golden: dict, pixels: dict) -> None:
    case = next(c for c in golden["selftest_compare"] if c["name"] == "small_noise")
    case["result"]["min_cosine"] += 1e-9


def _shift_pixel(golden: dict, pixels: dict) -> None:
    entry = pixels["images"]["landscape"]["official_v1_bgr"]
    values = bytearray(base64.b64decode(entry["rgb_hwc_u8_b64"]))
    index = next(i for i in range(len(values)) if i not in set(entry["ambiguous"]) and values[i] < 255)
    values[index] += 1
    entry["rgb_hwc_u8_b64"] = base64.b64encode(bytes(values)).decode()


def test_kotlin_core_matches_python(tmp_path, export_cache):
    if KOTLINC is None:
        _missing("kotlinc is not on PATH (apt-get install kotlin junit4) to compile the Android demo's Kotlin core")
    assert JAVA is not None, "java is not on PATH"
    for jar in JUNIT_JARS:
        assert jar.is_file(), f"{jar} is missing: apt-get install junit4 (or set SDEPLOY_JUNIT_JAR)"
    from shufflenet_deploy.apps.golden import CONTRACTS, write_golden
    from shufflenet_deploy.apps.selftest import compare
    from shufflenet_deploy.preprocess import InputContract

    bundles = _bundle_models(tmp_path, export_cache)
    # The golden contracts plus the one each V2 arch's model.json carries: Kotlin must reproduce them all.
    contracts = {**CONTRACTS, **{arch: InputContract.from_dict(mj["preprocess"]) for arch, (_, mj) in bundles.items()}}
    golden_dir = tmp_path / "golden"
    write_golden(golden_dir, contracts)
    _write_golden_pixels(golden_dir)
    model_json_path, model_json = bundles["v2_x0_5"]
    assert model_json.get("selftest_file") == "selftest.json" and (model_json_path.parent / "selftest.json").is_file()
    expect = tmp_path / "model_expect.txt"
    expect.write_text(_expectations(model_json))
    report_path = tmp_path / "device-report.json"
    jar = _compile(tmp_path)

    classes = _kotlin_test_classes()
    env = {"SDEPLOY_GOLDEN_DIR": str(golden_dir), "SDEPLOY_MODEL_JSON": str(model_json_path),
           "SDEPLOY_MODEL_EXPECT": str(expect), "SDEPLOY_REPORT_OUT": str(report_path)}  # fmt: skip
    run = _junit(jar, classes, env)
    output = run.stdout + run.stderr
    count = _count_kotlin_tests()
    assert run.returncode == 0 and f"OK ({count} tests)" in run.stdout, f"Kotlin tests failed:\n{output}"

    diffs = [float(d) for d in re.findall(PREPROCESS_LINE, run.stdout, re.MULTILINE)]
    golden = json.loads((golden_dir / "golden.json").read_text())
    assert len(diffs) == len(golden["images"]) * len(contracts), f"expected a line per image x contract:\n{output}"
    topk = float(re.search(r"topk: .* max probability \|diff\| (\S+)$", run.stdout, re.MULTILINE).group(1))
    compare_diff = float(
        re.search(r"selftest_compare: (\d+) cases, max metric \|diff\| (\S+)$", run.stdout, re.MULTILINE).group(2)
    )
    assert re.search(r"layout pixels: \d+ cases equal to Python's rounded pixels", run.stdout), output
    assert re.search(r"layout nhwc: max \|diff\| 0\.000e\+00", run.stdout), output

    # The device report the Kotlin code wrote is what `sdeploy verify --device-report` reads: re-judge it in Python.
    report = json.loads(report_path.read_text())
    assert report["schema"] == "sdeploy-device-report/1" and report["app"] == "android"
    assert set(report) >= {"created", "artifact", "sha256", "model_sha256", "runtime", "accelerator", "device", "verdict",
                           "max_abs_error", "max_rel_error", "min_cosine", "top1_agreement", "decisive_top1_agreement",
                           "median_ms", "error", "images"}  # fmt: skip
    case = next(c for c in golden["selftest_compare"] if c["name"] == "small_noise")
    python = compare(
        [i["output"] for i in report["images"]], [i["expected"] for i in report["images"]], case["tolerance"]
    )
    assert python["verdict"] == report["verdict"]
    for metric, value in python.items():
        if metric != "verdict":
            assert abs(value - report[metric]) <= 1e-12, (metric, value, report[metric])

    # Negative controls: each planted error must make the Kotlin test that guards it fail, naming the case.
    controls = [
        (_shift_tensor, "GoldenPreprocessTest", r"portrait/imagenet_rgb: max \|diff\| 1\.0\d*e-04 > 1e-05"),
        (_shift_metric, "GoldenSelfTestTest", r"small_noise: min_cosine kotlin"),
        (_shift_pixel, "GoldenLayoutTest", r"landscape/official_v1_bgr: 1 pixels differ from Python's rint"),
    ]
    for i, (edit, test_class, message) in enumerate(controls):
        bad_dir = _tampered(golden_dir, tmp_path / f"tampered-{i}", edit)
        bad = _junit(jar, [f"dev.sdeploy.demo.core.{test_class}"], {**env, "SDEPLOY_GOLDEN_DIR": str(bad_dir)})
        bad_output = bad.stdout + bad.stderr
        assert bad.returncode != 0, f"{edit.__name__} went unnoticed by {test_class}:\n{bad_output}"
        assert re.search(message, bad_output), bad_output
        assert "Failures: 1" in bad_output, bad_output

    ARTIFACTS.mkdir(exist_ok=True)
    summary = {
        "kotlin_tests": count,
        "test_classes": classes,
        "preprocess_tensors": len(diffs),
        "preprocess_max_abs_diff": max(diffs),
        "topk_max_probability_diff": topk,
        "selftest_compare_max_metric_diff": compare_diff,
        "model_json": {"arch": model_json["arch"], "format": model_json["format"], "input": model_json["input"]},
        "contracts": sorted(contracts),
        "negative_controls": [f"{edit.__name__} detected by {test_class}" for edit, test_class, _ in controls],
    }
    (ARTIFACTS / "android_demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


def test_16kb_check_script_tells_aligned_from_unaligned_libraries(tmp_path):
    """tools/check_16kb.sh (the CI job's check) on two fake APKs: one 16 KB-aligned library, and one 4 KB one added."""
    gcc, readelf = shutil.which("gcc"), shutil.which("readelf")
    if gcc is None or readelf is None:
        pytest.skip("needs gcc and readelf to build test libraries")
    source = tmp_path / "f.c"
    source.write_text("int f(void) { return 1; }\n")
    libraries = {}
    for page, abi in ((16384, "arm64-v8a"), (4096, "x86_64")):
        out = tmp_path / f"lib{page}.so"
        flags = [f"-Wl,-z,max-page-size={page}", f"-Wl,-z,common-page-size={page}"]
        subprocess.run([gcc, "-shared", "-fPIC", *flags, "-o", str(out), str(source)], check=True, capture_output=True)
        libraries[f"lib/{abi}/lib{page}.so"] = out
    apks = {}
    for name, members in (("good", ["lib/arm64-v8a/lib16384.so"]), ("bad", list(libraries))):
        apks[name] = tmp_path / f"{name}.apk"
        with zipfile.ZipFile(apks[name], "w", zipfile.ZIP_STORED) as apk:
            for member in members:
                apk.write(libraries[member], member)
    env = {**os.environ, "ZIPALIGN": "/bin/true"}  # zip alignment needs the SDK's zipalign; CI runs the real one
    script = str(ANDROID / "tools/check_16kb.sh")
    good = subprocess.run(["sh", script, str(apks["good"])], capture_output=True, text=True, env=env, check=False)
    assert good.returncode == 0 and "16 KB-aligned: lib/arm64-v8a/lib16384.so (LOAD alignment 16384)" in good.stdout, (
        good
    )
    bad = subprocess.run(["sh", script, str(apks["bad"])], capture_output=True, text=True, env=env, check=False)
    assert (
        bad.returncode == 1 and "NOT 16 KB-aligned: lib/x86_64/lib4096.so (smallest LOAD alignment 4096)" in bad.stderr
    ), bad
    # --expect-unaligned (CI's check that the pytorchLite build really is the unpublishable one) inverts it,
    # but a missing APK is never a success.
    expect = [["sh", script, "--expect-unaligned", str(apks[name])] for name in ("bad", "good")]
    assert [subprocess.run(c, capture_output=True, env=env, check=False).returncode for c in expect] == [0, 1]
    missing = subprocess.run(
        ["sh", script, "--expect-unaligned", str(tmp_path / "none.apk")], capture_output=True, env=env, check=False
    )
    assert missing.returncode == 2
