"""The iOS demo app (ios_demo/), checked as far as Linux can without Xcode or a Swift compiler.

What is checked for real:

- ``project.yml`` (XcodeGen) declares one iOS app target, iOS >= 16, the Swift sources, the Model
  files exactly where ``sdeploy bundle --app ios`` writes them (the .mlpackage in Compile Sources so
  Xcode generates the ``ShuffleNetClassifier`` class), the privacy strings and a bundle id;
- every ``model.json`` key that ``ModelConfig.swift`` decodes exists, with a matching JSON type, in a
  model.json written by the real ``bundle("ios", ...)`` from a real (tiny) Core ML export;
- the region-of-interest formula in ``Classifier.swift`` is, line for line, ``roi_for`` below, and
  cropping that ROI then scaling it to img_size samples the same source positions as the contract's
  resize-shorter-side + centre crop (``preprocess.resize_and_crop``), to within one model-input pixel;
- the bundled package is a classifier with one image input and the ``classLabel_probs`` dictionary
  that Vision turns into the ``VNClassificationObservation``s that ``Classifier.swift`` reads;
- the asset catalog, the images the Swift code names, and the README's ``sdeploy`` commands.

Not checked (no Xcode here): that the Swift compiles, that XcodeGen accepts the spec, and what
Vision's resampling produces on a device. See ios_demo/README.md.
"""

from __future__ import annotations

import inspect
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from shufflenet_deploy import golden
from shufflenet_deploy.apps.bundle import APPS, bundle
from shufflenet_deploy.cli import main as sdeploy_cli
from shufflenet_deploy.export import export
from shufflenet_deploy.nets.registry import get_arch
from shufflenet_deploy.preprocess import InputContract, resize_and_crop

REPO = Path(__file__).resolve().parent.parent
IOS = REPO / "ios_demo"
APP_SOURCES = IOS / "ShuffleNetDemo"
IOS_APP = APPS["ios"]
MODEL_DIR = Path(IOS_APP.default_dest).relative_to("ios_demo")  # ShuffleNetDemo/Model, relative to project.yml
MODEL_CLASS = Path(IOS_APP.model_name).stem  # the class Xcode generates from ShuffleNetClassifier.mlpackage
SWIFT_FILES = (
    "ShuffleNetDemoApp.swift",
    "ContentView.swift",
    "Classifier.swift",
    "ModelConfig.swift",
    "CameraPicker.swift",
)
IMG_SIZE = 64


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """A real export -> bundle round trip: (model dir as the app gets it, its model.json, bundled file names)."""
    root = tmp_path_factory.mktemp("ios_bundle")
    result = export("v2_x0_5", IOS_APP.target, weights="random", out=root / "export", img_size=IMG_SIZE,
                    progress=False, **IOS_APP.export_options)  # fmt: skip
    assert result.ok, result.results
    dest = root / "Model"
    bundled = bundle("ios", root / "export", dest)
    model_json = json.loads((dest / "model.json").read_text(encoding="utf-8"))
    assert model_json == bundled.model_json
    return dest, model_json, bundled.files


@pytest.fixture(scope="module")
def project() -> dict:
    return yaml.safe_load((IOS / "project.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def app_target(project) -> dict:
    apps = [t for t in project["targets"].values() if t.get("type") == "application" and t.get("platform") == "iOS"]
    assert len(apps) == 1, "project.yml must declare exactly one iOS application target"
    return apps[0]


def target_sources(target: dict) -> dict[str, dict]:
    sources = target["sources"]
    sources = [sources] if isinstance(sources, (str, dict)) else sources
    entries = [s if isinstance(s, dict) else {"path": s} for s in sources]
    return {entry["path"]: entry for entry in entries}


def swift(name: str) -> str:
    return (APP_SOURCES / name).read_text(encoding="utf-8")


def version_tuple(text) -> tuple[int, ...]:
    return tuple(int(part) for part in str(text).split("."))


def strip_comments_and_strings(source: str, keep_strings: bool = False) -> str:
    """Swift source without comments, string literals emptied unless ``keep_strings`` (enough for brace matching)."""
    out, i, n = [], 0, len(source)
    while i < n:
        if source.startswith("//", i):
            i = source.find("\n", i) if "\n" in source[i:] else n
        elif source.startswith("/*", i):
            i = source.index("*/", i) + 2
        elif source[i] == '"':
            start = i
            i += 1
            depth = 0  # inside \( ... ) interpolation
            while i < n and (source[i] != '"' or depth):
                if source.startswith("\\(", i):
                    depth, i = depth + 1, i + 2
                    continue
                if depth and source[i] == ")":
                    depth -= 1
                elif source[i] == "\\":
                    i += 1
                elif source[i] == "\n" and not depth:
                    raise AssertionError("unterminated string literal")
                i += 1
            i += 1
            out.append(source[start:i] if keep_strings else '""')
        else:
            out.append(source[i])
            i += 1
    return "".join(out)


def matching_brace(text: str, open_at: int) -> int:
    depth = 0
    for index in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return index
    raise AssertionError(f"unbalanced braces after offset {open_at}")


# ---------------------------------------------------------------- ModelConfig.swift <-> model.json


def decodable_structs(source: str) -> dict[str, dict[str, tuple[str, str]]]:
    """{struct: {property: (json key, swift type)}} for the top-level Decodable structs of a Swift file."""
    code = strip_comments_and_strings(source, keep_strings=True)
    structs = {}
    for match in re.finditer(r"^struct (\w+)\s*:\s*[^{]*\bDecodable\b[^{]*\{", code, re.MULTILINE):
        body = code[match.end() : matching_brace(code, match.end() - 1)]
        properties = dict(re.findall(r"^    let (\w+): ([\w\[\]?]+)\s*$", body, re.MULTILINE))
        keys = {name: name for name in properties}
        coding = re.search(r"enum CodingKeys\s*:\s*String\s*,\s*CodingKey\s*\{", body)
        if coding:
            enum_body = body[coding.end() : matching_brace(body, coding.end() - 1)]
            declared = {}
            for case in re.findall(r"^\s*case (.+)$", enum_body, re.MULTILINE):
                for item in case.split(","):
                    name, _, raw = item.partition("=")
                    declared[name.strip()] = raw.strip().strip('"') if raw else name.strip()
            assert set(declared) == set(properties), (
                f"{match.group(1)}: CodingKeys {sorted(declared)} != properties {sorted(properties)}"
            )
            keys = declared
        structs[match.group(1)] = {name: (keys[name], swift_type) for name, swift_type in properties.items()}
    return structs


def json_mismatches(structs: dict, struct: str, value, path: str = "") -> tuple[list[str], list[str]]:
    """(problems, checked key paths) for decoding ``value`` as ``struct``."""
    problems, checked = [], []

    def check(swift_type: str, item, where: str) -> None:
        # An optional type still needs its key: the caller reports a missing one.
        swift_type = swift_type.removesuffix("?")
        array = re.fullmatch(r"\[(\w+)\]", swift_type)
        if swift_type in structs:
            if not isinstance(item, dict):
                problems.append(f"{where}: expected an object, got {item!r}")
                return
            sub_problems, sub_checked = json_mismatches(structs, swift_type, item, where)
            problems.extend(sub_problems)
            checked.extend(sub_checked)
        elif array:
            if not isinstance(item, list):
                problems.append(f"{where}: expected an array, got {item!r}")
                return
            for index, element in enumerate(item):
                check(array.group(1), element, f"{where}[{index}]")
        else:
            ok = {
                "String": lambda v: isinstance(v, str),
                "Int": lambda v: isinstance(v, int) and not isinstance(v, bool),
                "Double": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
                "Float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
                "Bool": lambda v: isinstance(v, bool),
            }.get(swift_type)
            if ok is None:
                problems.append(f"{where}: Swift type {swift_type} is not handled by this test")
            elif not ok(item):
                problems.append(f"{where}: {item!r} does not decode as {swift_type}")

    for key, swift_type in structs[struct].values():
        where = f"{path}.{key}" if path else key
        if key not in value:
            problems.append(f"{where}: not in model.json")
            continue
        checked.append(where)
        check(swift_type, value[key], where)
    return problems, checked


def test_model_config_keys_exist_in_a_bundled_model_json(bundled):
    _, model_json, _ = bundled
    structs = decodable_structs(swift("ModelConfig.swift"))
    assert "ModelConfig" in structs
    problems, checked = json_mismatches(structs, "ModelConfig", model_json)
    assert not problems, problems
    # The keys the classifier actually depends on are among those checked.
    for key in ("schema", "input.name", "input.kind", "preprocess.img_size", "preprocess.resize_size",
                "preprocess.crop", "preprocess.resize"):  # fmt: skip
        assert key in checked, (key, checked)
    assert model_json["schema"] in swift("ModelConfig.swift")  # supportedSchema is the one bundle writes


def test_model_config_check_catches_a_misspelt_key_and_a_wrong_type(bundled):
    """The checker above is not vacuous: a renamed key or a wrong Swift type is reported."""
    _, model_json, _ = bundled
    source = swift("ModelConfig.swift")
    misspelt = source.replace('case resizeSize = "resize_size"', 'case resizeSize = "resize_side"')
    assert misspelt != source
    problems, _ = json_mismatches(decodable_structs(misspelt), "ModelConfig", model_json)
    assert problems == ["preprocess.resize_side: not in model.json"]
    wrong_type = source.replace("    let numClasses: Int", "    let numClasses: String")
    assert wrong_type != source
    problems, _ = json_mismatches(decodable_structs(wrong_type), "ModelConfig", model_json)
    assert problems == [f"num_classes: {model_json['num_classes']!r} does not decode as String"]


# ---------------------------------------------------------------- the region of interest


def roi_for(w, h, imgSize, resizeSize):
    # ROI-FORMULA: keep these lines identical to Classifier.regionOfInterest in ios_demo/ShuffleNetDemo/Classifier.swift.
    side = min(w, h) * imgSize / resizeSize
    x = (w - side) / 2 / w
    y = (h - side) / 2 / h
    return (x, y, side / w, side / h)


def swift_roi_function() -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """(parameter names, [(let name, expression)], [CGRect x, y, width, height expressions]) from Classifier.swift."""
    source = swift("Classifier.swift")
    block = re.search(r"// ROI-FORMULA-BEGIN(.*?)// ROI-FORMULA-END", source, re.DOTALL)
    assert block, "Classifier.swift lost its ROI-FORMULA-BEGIN/END markers"
    code = block.group(1)
    signature = re.search(r"static func regionOfInterest\((.*?)\)\s*->\s*CGRect", code)
    assert signature
    params = [part.split(":")[0].split()[-1] for part in signature.group(1).split(",")]
    lets = re.findall(r"^\s*let (\w+) = (.+?)\s*$", code, re.MULTILINE)
    rect = re.search(r"return CGRect\(x: (.+?), y: (.+?), width: (.+?), height: (.+?)\)\s*$", code, re.MULTILINE)
    assert rect
    return params, lets, list(rect.groups())


def test_swift_roi_formula_is_the_tested_one():
    params, swift_lets, swift_rect = swift_roi_function()
    python = inspect.getsource(roi_for)
    assert params == list(inspect.signature(roi_for).parameters)
    assert swift_lets == re.findall(r"^    (\w+) = (.+?)\s*$", python, re.MULTILINE)
    python_return = re.search(r"^    return \((.+)\)\s*$", python, re.MULTILINE).group(1)
    assert swift_rect == [part.strip() for part in python_return.split(",")]
    # And the Swift expressions, evaluated, give roi_for's numbers.
    for w, h, img, resize in [(800, 600, 224, 256), (3024, 4032, 224, 256), (97, 61, 40, 46), (64, 64, 64, 73)]:
        scope = {"min": min, "w": float(w), "h": float(h), "imgSize": float(img), "resizeSize": float(resize)}
        for name, expression in swift_lets:
            scope[name] = eval(expression, {}, scope)
        assert [eval(e, {}, scope) for e in swift_rect] == pytest.approx(roi_for(w, h, img, resize), abs=1e-12)


def test_classifier_uses_the_roi_with_scale_fill_and_orientation():
    code = strip_comments_and_strings(swift("Classifier.swift"))
    assert "request.imageCropAndScaleOption = .scaleFill" in code
    assert re.search(r"request\.regionOfInterest = Self\.regionOfInterest\(\s*width: width, height: height,\s*"
                     r"imgSize: Double\(config\.preprocess\.imgSize\), resizeSize: Double\(config\.preprocess\.resizeSize\)\)",
                     code)  # fmt: skip
    assert re.search(r"VNImageRequestHandler\(cgImage: cgImage, orientation: orientation", code)
    # The ROI is measured on the upright image: EXIF orientations 5-8 swap width and height.
    swaps = re.search(r"var swapsWidthAndHeight: Bool \{.*?case (.*?): return true", code, re.DOTALL)
    assert swaps and {c.strip() for c in swaps.group(1).split(",")} == {
        ".left",
        ".leftMirrored",
        ".right",
        ".rightMirrored",
    }


def contract_sample_positions(width: int, height: int, contract: InputContract) -> tuple[np.ndarray, np.ndarray]:
    """Source-pixel x of each model-input column and y of each row, as resize_and_crop samples them.

    The input image holds its own pixel-centre coordinates, so each output pixel is the (filter-weighted)
    source position it is centred on.
    """
    xs = np.broadcast_to(np.arange(width) + 0.5, (height, width))
    ys = np.broadcast_to((np.arange(height) + 0.5)[:, None], (height, width))
    out = resize_and_crop(np.stack([xs, ys], axis=-1), contract)
    assert np.ptp(out[..., 0], axis=0).max() < 1e-6 and np.ptp(out[..., 1], axis=1).max() < 1e-6
    return out[0, :, 0], out[:, 0, 1]


def vision_sample_positions(width: int, height: int, roi: tuple, img_size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Where crop-to-ROI + scale-to-img_size centres each model-input pixel, and one such pixel in source pixels."""
    x, y, w, h = roi
    left, top = x * width, (1 - y - h) * height  # Vision's ROI origin is the lower-left corner
    centres = np.arange(img_size) + 0.5
    return left + centres * w * width / img_size, top + centres * h * height / img_size, w * width / img_size


CONTRACTS = {
    "default_224_256": InputContract(),
    **{name: contract for name, contract in golden.CONTRACTS.items()},
}
SIZES = [*[(w, h) for w, h, _ in golden.IMAGES.values()], (800, 600), (600, 800), (1920, 1080), (1080, 1920),
         (224, 224), (1001, 999), (73, 300), (300, 73)]  # fmt: skip


def roi_error_pixels(width: int, height: int, contract: InputContract, roi: tuple) -> float:
    cx, cy = contract_sample_positions(width, height, contract)
    vx, vy, pixel = vision_sample_positions(width, height, roi, contract.img_size)
    return max(np.abs(cx - vx).max(), np.abs(cy - vy).max()) / pixel


@pytest.mark.parametrize("contract_name", ["bundled", *CONTRACTS])
def test_roi_then_scale_samples_what_the_contract_samples(contract_name, bundled):
    if contract_name == "bundled":
        pre = bundled[1]["preprocess"]
        contract = InputContract(img_size=pre["img_size"], resize_size=pre["resize_size"])
    else:
        contract = CONTRACTS[contract_name]
    for width, height in SIZES:
        roi = roi_for(width, height, contract.img_size, contract.resize_size)
        assert all(0 <= v <= 1 for v in roi) and roi[0] + roi[2] <= 1 + 1e-12 and roi[1] + roi[3] <= 1 + 1e-12
        assert roi[2] * width == pytest.approx(roi[3] * height)  # a square in pixels: .scaleFill does not distort
        error = roi_error_pixels(width, height, contract, roi)
        assert error <= 1.0, (contract_name, width, height, error)  # the contract's own integer rounding


@pytest.mark.parametrize("contract_name", ["bundled", "default_224_256"])
def test_plain_center_crop_would_not_match(contract_name, bundled):
    """Vision's .centerCrop (the whole central square) is measurably different: the check above can fail."""
    if contract_name == "bundled":
        pre = bundled[1]["preprocess"]
        contract = InputContract(img_size=pre["img_size"], resize_size=pre["resize_size"])
    else:
        contract = CONTRACTS[contract_name]
    for width, height in [(800, 600), (600, 800), (97, 61)]:
        side = min(width, height)
        center_crop = ((width - side) / 2 / width, (height - side) / 2 / height, side / width, side / height)
        assert roi_error_pixels(width, height, contract, center_crop) > 3


# ---------------------------------------------------------------- the bundled Core ML package


def test_bundled_package_is_the_classifier_the_app_reads(bundled):
    import coremltools as ct

    dest, model_json, _ = bundled
    spec = ct.utils.load_spec(str(dest / IOS_APP.model_name))
    assert spec.WhichOneof("Type") == "mlProgram"
    assert spec.specificationVersion <= 7  # Core ML 6 (iOS 16): loads on the app's deployment target

    description = spec.description
    assert len(description.input) == 1
    image = description.input[0]
    assert image.name == model_json["input"]["name"] and model_json["input"]["kind"] == "image"
    assert image.type.WhichOneof("Type") == "imageType"  # Vision feeds it; no manual pixel buffer code
    assert (image.type.imageType.width, image.type.imageType.height) == (IMG_SIZE, IMG_SIZE)
    assert model_json["preprocess"]["img_size"] == IMG_SIZE
    color_space = ct.proto.FeatureTypes_pb2.ImageFeatureType.ColorSpace.Name(image.type.imageType.colorSpace)
    assert color_space == model_json["preprocess"]["color_order"]

    outputs = {o.name: o for o in description.output}
    # Vision returns VNClassificationObservations for a classifier: string class labels and their probabilities.
    assert description.predictedFeatureName == "classLabel"
    assert outputs["classLabel"].type.WhichOneof("Type") == "stringType"
    assert description.predictedProbabilitiesName == "classLabel_probs"
    probs = outputs["classLabel_probs"].type
    assert (
        probs.WhichOneof("Type") == "dictionaryType" and probs.dictionaryType.WhichOneof("KeyType") == "stringKeyType"
    )


def test_swift_reads_the_bundled_model_by_its_generated_class(bundled):
    _, model_json, files = bundled
    assert model_json["model_file"] == IOS_APP.model_name
    classifier = strip_comments_and_strings(swift("Classifier.swift"))
    raw = swift("Classifier.swift")
    assert f"{MODEL_CLASS}(configuration: configuration)" in classifier
    assert f'static let modelName = "{MODEL_CLASS}"' in raw
    assert 'bundle.url(forResource: Self.modelName, withExtension: "mlmodelc")' in raw
    assert "VNCoreMLModel(for: model)" in classifier
    assert "VNCoreMLRequest(model: visionModel)" in classifier
    assert "as? [VNClassificationObservation]" in classifier
    assert 'bundle.url(forResource: "model", withExtension: "json")' in swift("ModelConfig.swift")
    assert "model.json" in files


# ---------------------------------------------------------------- project.yml, sources, assets


def test_project_declares_the_ios_app(project, app_target):
    deployment = app_target.get("deploymentTarget") or project["options"]["deploymentTarget"]["iOS"]
    assert version_tuple(deployment) >= (16, 0)  # PhotosPicker
    assert version_tuple(project["options"]["deploymentTarget"]["iOS"]) >= (16, 0)
    settings = {**project.get("settings", {}).get("base", {}), **app_target["settings"]["base"]}
    assert re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", settings["PRODUCT_BUNDLE_IDENTIFIER"])
    assert version_tuple(settings["SWIFT_VERSION"]) >= (5, 0)

    info = app_target["info"]
    assert info["path"] == "ShuffleNetDemo/Info.plist"
    for key in ("NSCameraUsageDescription", "NSPhotoLibraryUsageDescription"):
        assert isinstance(info["properties"].get(key), str) and len(info["properties"][key]) > 20, key

    icon = settings["ASSETCATALOG_COMPILER_APPICON_NAME"]
    assert (APP_SOURCES / "Assets.xcassets" / f"{icon}.appiconset").is_dir()


def test_project_sources_and_model_files(app_target, bundled):
    sources = target_sources(app_target)
    main = sources["ShuffleNetDemo"]
    for name in SWIFT_FILES:
        assert (IOS / main["path"] / name).is_file(), name
    assert sorted(p.name for p in APP_SOURCES.rglob("*.swift")) == sorted(SWIFT_FILES)
    # The Model folder is not swept in by the folder source (an .mlpackage there would land in Resources).
    assert f"{MODEL_DIR.relative_to(main['path'])}/**" in main["excludes"]

    # Exactly the files `sdeploy bundle --app ios` writes, at the path it writes them to.
    _, _, bundled_files = bundled
    model_entries = {Path(p).name: entry for p, entry in sources.items() if Path(p).parent == MODEL_DIR}
    assert sorted(model_entries) == sorted(bundled_files)
    package = model_entries[IOS_APP.model_name]
    assert package["buildPhase"] == "sources" and package["type"] == "file"  # compiled; class generated
    for name in bundled_files:
        if name != IOS_APP.model_name:
            assert model_entries[name]["buildPhase"] == "resources", name

    script = "\n".join(s["script"] for s in app_target["preBuildScripts"])
    assert "sdeploy bundle --app ios" in script
    for name in bundled_files:
        assert name in script


def test_gitignore_covers_generated_files(app_target):
    ignored = {
        line.strip() for line in (IOS / ".gitignore").read_text().splitlines() if line and not line.startswith("#")
    }
    for name in APPS["ios"].model_name, "labels.txt", "model.json":
        path = f"{MODEL_DIR}/{name}"
        assert path in ignored or f"{path}/" in ignored, path
    assert app_target["info"]["path"] in ignored
    assert {"*.xcodeproj/", "DerivedData/", "xcuserdata/"} <= ignored


def test_asset_catalog_and_named_images():
    from PIL import Image

    catalog = APP_SOURCES / "Assets.xcassets"
    json.loads((catalog / "Contents.json").read_text())
    for contents in catalog.glob("*.*set/Contents.json"):
        for entry in json.loads(contents.read_text())["images"]:
            assert (contents.parent / entry["filename"]).is_file(), entry
    with Image.open(catalog / "AppIcon.appiconset" / "AppIcon.png") as icon:
        assert icon.size == (1024, 1024) and icon.mode == "RGB"  # App Store icons have no alpha
    names = set(re.findall(r'UIImage\(named: "([^"]+)"\)', "".join(swift(n) for n in SWIFT_FILES)))
    assert names, "the app should show a bundled sample image"
    for name in names:
        imageset = catalog / f"{name}.imageset"
        assert imageset.is_dir(), name
        with Image.open(next(imageset.glob("*.png"))) as sample:
            assert sample.width != sample.height  # not square: the first launch exercises the centre crop


def test_swift_sources_are_well_formed():
    """Not a compiler: balanced delimiters, one @main, and the camera wrapper gated on availability."""
    for name in SWIFT_FILES:
        code = strip_comments_and_strings(swift(name))
        stack = []
        for ch in code:
            if ch in "([{":
                stack.append(ch)
            elif ch in ")]}":
                assert stack and stack.pop() == {")": "(", "]": "[", "}": "{"}[ch], name
        assert not stack, name
    all_code = "".join(strip_comments_and_strings(swift(n)) for n in SWIFT_FILES)
    assert all_code.count("@main") == 1
    assert "PhotosPicker(" in all_code
    assert "if CameraPicker.isAvailable" in all_code
    assert "UIImagePickerController.isSourceTypeAvailable(.camera)" in all_code


def test_readme_commands_parse_with_the_cli():
    readme = (IOS / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.DOTALL)
    commands = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    commands = [c for c in commands if c.startswith("sdeploy ")]
    assert any(c.startswith("sdeploy bundle --app ios") for c in commands), commands
    for command in commands:
        args = shlex.split(command)[1:]
        sub = sdeploy_cli.get_command(None, args[0])
        assert sub is not None, command
        ctx = sub.make_context(args[0], args[1:])  # raises click.UsageError on an unknown or bad option
        if ctx.params.get("arch"):
            get_arch(ctx.params["arch"])
    for step in ("xcodegen generate", "brew install xcodegen", "ShuffleNetDemo.xcodeproj"):
        assert step in readme, step
