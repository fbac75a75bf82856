"""Write the XCTests' resources: Python's golden vectors, so the Swift tests check Swift against Python.

Run from the repository root, after installing the package (and, for the end-to-end self-test, after
`sdeploy bundle --app ios ...`):

    python ios_demo/tools/make_test_resources.py                                  # bundles a tiny model itself
    python ios_demo/tools/make_test_resources.py --model-dir ios_demo/ShuffleNetDemo/Model

It fills ios_demo/ShuffleNetDemoTests/Resources/ (git-ignored, copied into the test bundle as a folder):

- golden/         `sdeploy demo golden`: golden.json ("topk", "labels", "images" with their PNGs and
                  preprocessing tensors, "selftest_compare") and the PNGs;
- ios_golden.json where the contract samples each model-input pixel (x and y in source pixels, from
                  `preprocess.resize_and_crop`) for many image sizes and contracts, with how far two wrong
                  regions (Vision's centre crop, an unrounded centred square) are from it; the model
                  copy's max pixel size (the rule downsample_parity.py emulates); and a few pictures with
                  Python's resized pixels, to measure Core ML's crop/scale against;
- bundle/         model.json, labels.txt and selftest.json exactly as `sdeploy bundle --app ios` wrote them
                  (from --model-dir, or from a tiny 64 px random-weight bundle made here).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent
IOS = TOOLS.parent
REPO = IOS.parent
DEFAULT_OUT = IOS / "ShuffleNetDemoTests" / "Resources"
DEFAULT_MODEL_DIR = IOS / "ShuffleNetDemo" / "Model"
IOS_GOLDEN_SCHEMA = "sdeploy-ios-golden/1"
BUNDLE_FILES = ("model.json", "labels.txt", "selftest.json")

#: (img_size, resize_size): ImageNet at both crop ratios, the golden vectors' contracts, the digits model's.
CONTRACTS = [(224, 256), (224, 232), (40, 46), (48, 50), (36, 41), (64, 73), (64, 64)]
#: Image sizes (width, height): both orientations, odd sizes, upscaling, exact fits, and model-copy sizes.
ROI_SIZES = [(97, 61), (50, 83), (20, 28), (46, 46), (64, 57), (800, 600), (600, 800), (1920, 1080), (1080, 1920),
             (224, 224), (1001, 999), (73, 300), (300, 73), (683, 512), (512, 683), (768, 512)]  # fmt: skip
#: Photo sizes for the model-copy rule: phone cameras (12, 24, 48 MP), panoramas, screenshots, tiny images.
COPY_SIZES = [(4032, 3024), (3024, 4032), (5712, 4284), (8064, 6048), (6048, 8064), (16000, 3000), (3000, 16000),
              (9000, 700), (1179, 2556), (2556, 1179), (2048, 1536), (2049, 100), (640, 427), (1, 1)]  # fmt: skip
COPY_RESIZES = [256, 232, 73, 64]
#: Core ML's crop/scale against Python's resize on pictures that need real downscaling (the golden PNGs are tiny).
SCALER_CONTRACTS = [(224, 256), (64, 73), (64, 64)]
SAMPLE_PNG = IOS / "ShuffleNetDemo" / "Assets.xcassets" / "Sample.imageset" / "sample.png"


def sdeploy(*args: str, cwd: Path | None = None) -> None:
    """Run the real CLI, as a user would."""
    subprocess.run([sys.executable, "-m", "shufflenet_deploy", *args], check=True, cwd=cwd)


def contract_sample_positions(width: int, height: int, img_size: int, resize_size: int) -> dict:
    """Where ``preprocess.resize_and_crop`` centres each model-input column (x) and row (y), in source pixels.

    The input image holds its own pixel-centre coordinates, so each output pixel is the (filter-weighted)
    source position it is centred on. Where the filter window is cut by the picture's border the weighted
    position moves inwards (any resampler clamps there): ``interior_x``/``interior_y`` mark the positions whose
    window is whole, the ones a geometry check compares.
    """
    from shufflenet_deploy.preprocess import InputContract, resize_and_crop, resized_size

    contract = InputContract(img_size=img_size, resize_size=resize_size)
    xs = np.broadcast_to(np.arange(width) + 0.5, (height, width))
    ys = np.broadcast_to((np.arange(height) + 0.5)[:, None], (height, width))
    out = resize_and_crop(np.stack([xs, ys, xs], axis=-1), contract)
    new_w, new_h = resized_size(width, height, resize_size)

    def interior(size: int, new: int) -> list[bool]:
        scale = size / new
        support = max(scale, 1.0)
        offset = (new - img_size) // 2
        centres = (offset + np.arange(img_size) + 0.5) * scale
        return ((centres - support + 0.5 >= 0) & (centres + support + 0.5 <= size)).tolist()

    return {"contract_x": out[0, :, 0].tolist(), "contract_y": out[:, 0, 1].tolist(),
            "interior_x": interior(width, new_w), "interior_y": interior(height, new_h)}  # fmt: skip


def roi_sample_positions(width: int, height: int, roi: tuple, img_size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Where cropping the (normalised, lower-left origin) ROI then scaling it to img_size centres each pixel."""
    x, y, w, h = roi
    left, top = x * width, (1 - y - h) * height
    centres = np.arange(img_size) + 0.5
    return left + centres * w * width / img_size, top + centres * h * height / img_size, w * width / img_size


def reference_roi(width: int, height: int, img_size: int, resize_size: int) -> tuple:
    """CropGeometry.regionOfInterest in Python: the contract's crop, normalised, lower-left origin."""
    from shufflenet_deploy.preprocess import resized_size

    new_w, new_h = resized_size(width, height, resize_size)
    left, top = (new_w - img_size) // 2, (new_h - img_size) // 2
    return (left / new_w, 1 - (top + img_size) / new_h, img_size / new_w, img_size / new_h)


def centred_square_roi(width: int, height: int, img_size: int, resize_size: int) -> tuple:
    """The exact centred square (no integer rounding): what the app used before; within ~1.5 model pixels."""
    side = min(width, height) * img_size / resize_size
    return ((width - side) / 2 / width, (height - side) / 2 / height, side / width, side / height)


def roi_error_pixels(case: dict, roi: tuple) -> float:
    """Largest distance between the contract's and the ROI's sample positions whose filter window is whole,
    in model-input pixels."""
    vx, vy, pixel = roi_sample_positions(case["width"], case["height"], roi, case["img_size"])
    dx = np.abs(np.asarray(case["contract_x"]) - vx)[np.asarray(case["interior_x"])]
    dy = np.abs(np.asarray(case["contract_y"]) - vy)[np.asarray(case["interior_y"])]
    return float(max(dx.max(initial=0), dy.max(initial=0)) / pixel)


def scaler_images() -> dict[str, np.ndarray]:
    """Deterministic pictures whose resize is a real downscale: a drawing, noise, a checkerboard, fine stripes."""
    from PIL import Image

    from shufflenet_deploy.preprocess import random_images

    with Image.open(SAMPLE_PNG) as sample:
        drawing = np.asarray(sample.convert("RGB"))
    noise = random_images(1, 333, seed=7)[0][:, :251]
    squares = ((np.indices((180, 240)).sum(axis=0) // 12) % 2 * 200 + 30).astype(np.uint8)
    x = np.arange(600)[None, :] + np.zeros((400, 1))
    stripes = np.where((x // 3) % 2 == 0, 220, 35).astype(np.uint8)
    return {"drawing": drawing, "noise": np.ascontiguousarray(noise), "checkerboard": np.repeat(squares[..., None], 3, 2),
            "stripes": np.repeat(stripes[..., None], 3, 2)}  # fmt: skip


def scaler_cases() -> list[dict]:
    """PNG pictures and Python's resized, cropped pixels for them (HWC RGB float32, unrounded) per contract."""
    import base64
    import io

    from PIL import Image

    from shufflenet_deploy.preprocess import InputContract, resize_and_crop

    cases = []
    for name, pixels in scaler_images().items():
        png = io.BytesIO()
        Image.fromarray(pixels).save(png, format="PNG")
        contracts = []
        for img_size, resize_size in SCALER_CONTRACTS:
            resized = resize_and_crop(pixels, InputContract(img_size=img_size, resize_size=resize_size))
            contracts.append({"img_size": img_size, "resize_size": resize_size,
                              "pixels_f32le_b64": base64.b64encode(resized.astype("<f4").tobytes()).decode()})  # fmt: skip
        cases.append({"name": name, "width": int(pixels.shape[1]), "height": int(pixels.shape[0]),
                      "png_base64": base64.b64encode(png.getvalue()).decode(), "contracts": contracts})  # fmt: skip
    return cases


def ios_golden() -> dict:
    sys.path.insert(0, str(TOOLS))
    from downsample_parity import DISPLAY_MAX, FACTOR, model_copy_max_pixel_size

    roi_cases = []
    for img_size, resize_size in CONTRACTS:
        for width, height in ROI_SIZES:
            case = {"width": width, "height": height, "img_size": img_size, "resize_size": resize_size,
                    **contract_sample_positions(width, height, img_size, resize_size)}  # fmt: skip
            side = min(width, height)
            center_crop = ((width - side) / 2 / width, (height - side) / 2 / height, side / width, side / height)
            case["center_crop_error"] = roi_error_pixels(case, center_crop)
            case["centred_square_error"] = roi_error_pixels(case, centred_square_roi(width, height, img_size, resize_size))
            roi_cases.append(case)
    copies = [{"width": w, "height": h, "resize_size": r, "max_pixel_size": model_copy_max_pixel_size(w, h, r)}
              for r in COPY_RESIZES for w, h in COPY_SIZES]  # fmt: skip
    return {"schema": IOS_GOLDEN_SCHEMA, "factor": FACTOR, "display_max": DISPLAY_MAX, "roi": roi_cases,
            "model_copy": copies, "scaler": scaler_cases()}


def copy_bundle(model_dir: Path | None, out: Path) -> Path:
    """bundle/: model.json, labels.txt and selftest.json from an existing bundle, or from a fresh tiny one."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if model_dir is None or not (model_dir / "model.json").is_file():
            model_dir = Path(tmp) / "Model"
            sdeploy("bundle", "--app", "ios", "--arch", "v2_x0_5", "--weights", "random", "--img-size", "64",
                    "--dest", str(model_dir), cwd=Path(tmp))  # fmt: skip
        for name in BUNDLE_FILES:
            if (model_dir / name).is_file():
                shutil.copyfile(model_dir / name, out / name)
            elif (out / name).exists():
                (out / name).unlink()
    return out


def write_resources(out: Path = DEFAULT_OUT, model_dir: Path | None = DEFAULT_MODEL_DIR) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    golden = out / "golden"
    if golden.exists():
        shutil.rmtree(golden)
    sdeploy("demo", "golden", str(golden))
    (out / "ios_golden.json").write_text(json.dumps(ios_golden()))
    bundle = copy_bundle(model_dir, out / "bundle")
    return [golden / "golden.json", out / "ios_golden.json", *sorted(bundle.iterdir())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Resources folder (default: %(default)s).")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR,
                        help="A bundle to copy model.json, labels.txt and selftest.json from (default: %(default)s; "
                             "if it has no model.json, a tiny one is bundled here).")  # fmt: skip
    args = parser.parse_args(argv)
    for path in write_resources(args.out, args.model_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
