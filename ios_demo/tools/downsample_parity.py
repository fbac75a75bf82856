"""What the iOS demo's large-photo downsampling costs in parity, emulated in Python.

The app never decodes a 24-48 MP photo at full size. ImageIO
(``CGImageSourceCreateThumbnailAtIndex``) decodes one copy whose longer side is
2048 px (the screen's need), enlarged only if that would leave its shorter side
under ``FACTOR * resize_size``; pictures up to 2048 px are decoded as they are.
Core ML crops the contract's region from that copy and scales it. Python's
contract resizes the full-size photo. This script measures the difference that
the intermediate copy makes:

    reference = model(contract(full-size image))
    app       = model(contract filter at the contract's geometry, applied to the copy)

``downsample`` stands in for ImageIO, whose exact filter is not documented, with
three high-quality proxies: Pillow's LANCZOS, Pillow's BOX, and a JPEG
decoded at a reduced DCT scale (``Image.draft``, what JPEG decoders do for
thumbnails) followed by LANCZOS. Each copy is rounded to 8 bits, as ImageIO
returns it. Core ML's own crop/scale filter is not documented either: the
"triangle" rows give it the contract's antialiased filter (so only the copy
differs), the "bilinear" rows a filter that does not antialias (context).

Errors are reported like ``sdeploy verify`` and the self-test report them: the
largest absolute logit error divided by the reference logits' range over all
images (``rel``), the lowest cosine, and top-1 changes (``decisive`` ones are
those whose reference top-2 gap is above 2 % of the range).

Usage, from the repository root (tens of minutes on 2 cores; a 48 MP image takes ~1.2 GB in float64):

    python ios_demo/tools/downsample_parity.py                          # photos from /usr/share/wallpapers if present
    python ios_demo/tools/downsample_parity.py --photos DIR --json downsample.json
    python ios_demo/tools/downsample_parity.py --quick                  # the reduced set tests/test_ios_demo.py uses
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
#: The copy's longer side (CropGeometry.displayMaxPixelSize), and the least its shorter side may be, in units of
#: resize_size (CropGeometry.modelCopyFactor): ios_demo/ShuffleNetDemo/Core/CropGeometry.swift.
DISPLAY_MAX = 2048
FACTOR = 2
#: Photos in Debian's plasma-workspace-wallpapers package (2560x1600 JPEGs), used when --photos is not given.
WALLPAPER_PHOTOS = ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
                    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")  # fmt: skip
WALLPAPERS = Path("/usr/share/wallpapers")
#: Megapixel sizes of the emulated camera photos: (width, height) for a 4:3 sensor.
CAMERA_SIZES = {"24MP": (5712, 4284), "48MP": (8064, 6048)}
DIGITS_CHECKPOINT = REPO / "models" / "digits_v2_x0_5.pt"


# ---------------------------------------------------------------- the app's rule, mirrored from Swift


def model_copy_max_pixel_size(width: int, height: int, resize_size: int, display_max: int = DISPLAY_MAX,
                              factor: int = FACTOR) -> int | None:  # fmt: skip
    """kCGImageSourceThumbnailMaxPixelSize of the copy the app decodes, or None to decode the picture as it is.

    Mirrors ``CropGeometry.modelCopyMaxPixelSize`` in Swift (the XCTests check it against values this function
    writes into the test resources).
    """
    short_side, long_side = min(width, height), max(width, height)
    if long_side <= display_max:
        return None
    max_pixel = max(display_max, math.ceil(factor * resize_size * long_side / short_side))
    return None if max_pixel >= long_side else max_pixel


def model_copy_size(width: int, height: int, resize_size: int, display_max: int = DISPLAY_MAX,
                    factor: int = FACTOR) -> tuple[int, int]:  # fmt: skip
    """(width, height) of the copy: the longer side is the max pixel size, the aspect ratio kept."""
    max_pixel = model_copy_max_pixel_size(width, height, resize_size, display_max, factor)
    if max_pixel is None:
        return width, height
    other = round(min(width, height) * max_pixel / max(width, height))
    return (max_pixel, other) if width >= height else (other, max_pixel)


# ---------------------------------------------------------------- images


@dataclass
class TestImage:
    name: str
    category: str  # photo | camera | synthetic | digit
    pixels: np.ndarray  # H x W x 3 uint8


def wallpaper_photos(folder: Path | None = None) -> list[Path]:
    if folder is not None:
        from shufflenet_deploy.preprocess import list_images

        return list_images(folder)
    found = []
    for name in WALLPAPER_PHOTOS:
        candidates = sorted((WALLPAPERS / name / "contents" / "images").glob("*.jpg"))
        if candidates:
            found.append(candidates[-1])
    return found


def load_rgb(path: Path) -> np.ndarray:
    from shufflenet_deploy.preprocess import load_image

    return load_image(path)


def camera_photo(photo: np.ndarray, size: tuple[int, int], seed: int) -> np.ndarray:
    """A photo enlarged to a camera's resolution (centre-cropped to 4:3) with sensor-like per-pixel noise."""
    width, height = size
    h, w = photo.shape[:2]
    crop_w = min(w, round(h * width / height))
    crop_h = min(h, round(crop_w * height / width))
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    big = Image.fromarray(photo[top : top + crop_h, left : left + crop_w]).resize(size, Image.BICUBIC)
    noise = np.random.default_rng(seed).normal(0, 3.0, (height, width, 1)).astype(np.float32)
    return np.clip(np.asarray(big, dtype=np.float32) + noise, 0, 255).astype(np.uint8)


def synthetic(kind: str, width: int, height: int, seed: int) -> np.ndarray:
    """Worst cases for resampling: fine detail at every scale, seeded."""
    rng = np.random.default_rng(seed)
    y = (np.arange(height, dtype=np.float32)[:, None] + 0.5) / height
    x = (np.arange(width, dtype=np.float32)[None, :] + 0.5) / width
    if kind == "field+noise":  # preprocess.random_images at camera size: smooth colour field plus strong noise
        coarse = rng.uniform(0, 255, (4, 4, 3)).astype(np.float32)
        field = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BILINEAR), np.float32)
        out = field + rng.normal(0, 30, (height, width, 1)).astype(np.float32)
    elif kind == "zoneplate":  # a chirp from flat to the full-size Nyquist frequency, three phases for colour
        r2 = ((x - 0.5) * width) ** 2 + ((y - 0.5) * height) ** 2
        k = np.pi / (2 * max(width, height) / 2)  # local frequency reaches Nyquist at the long edge
        out = np.stack([127.5 + 127.5 * np.cos(k * r2 + phase) for phase in (0.0, 2.1, 4.2)], axis=-1)
    elif kind == "stripes":  # stripes near the contract's own Nyquist (period ~2.3 px at resize_size 256)
        period = 2.3 * min(width, height) / 256
        angle = rng.uniform(0, np.pi)
        u = (x * width * np.cos(angle) + y * height * np.sin(angle)) / period
        base = 127.5 + 110 * np.sign(np.sin(2 * np.pi * u))
        out = np.stack([base, 255 - base, base * 0.5 + 60], axis=-1)
    elif kind == "edges":  # sharp-edged rectangles, like screenshots and documents
        out = np.full((height, width, 3), 235, np.float32)
        for _ in range(60):
            x0, y0 = rng.integers(0, width), rng.integers(0, height)
            x1, y1 = x0 + rng.integers(4, width // 6), y0 + rng.integers(4, height // 6)
            out[y0:y1, x0:x1] = rng.uniform(0, 255, 3)
    else:
        raise ValueError(kind)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


SYNTHETIC_KINDS = ("field+noise", "zoneplate", "stripes", "edges")


def digit_photo(index: int, width: int, height: int, seed: int) -> np.ndarray:
    """A handwritten digit (scikit-learn's 8x8 digits) filling the centre square of a large noisy frame."""
    from sklearn.datasets import load_digits

    from shufflenet_deploy.preprocess import resample_weights

    digit = load_digits().images[index]
    side = min(width, height)
    weights = resample_weights(8, side).astype(np.float32)
    grey = weights @ (digit.astype(np.float32) * (255 / 16)) @ weights.T
    frame = np.zeros((height, width), np.float32)
    top, left = (height - side) // 2, (width - side) // 2
    frame[top : top + side, left : left + side] = grey
    frame += np.random.default_rng(seed).normal(0, 3.0, frame.shape).astype(np.float32)
    return np.repeat(np.clip(np.rint(frame), 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


# ---------------------------------------------------------------- the downsampling proxies


def app_views(pixels: np.ndarray, resize_size: int, proxy: str, display_max: int = DISPLAY_MAX,
              factor: int = FACTOR) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(what Python decodes, the app's 8-bit copy) for one image and one ImageIO proxy."""
    height, width = pixels.shape[:2]
    size = model_copy_size(width, height, resize_size, display_max, factor)
    if proxy == "jpeg-dct":
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
        with Image.open(io.BytesIO(buffer.getvalue())) as full:
            reference = np.asarray(full.convert("RGB"))
        with Image.open(io.BytesIO(buffer.getvalue())) as small:
            small.draft("RGB", size)  # libjpeg decodes at 1/2, 1/4 or 1/8 scale, never below `size`
            copy = small.convert("RGB")
            if copy.size != size:
                copy = copy.resize(size, Image.LANCZOS)
            return reference, np.asarray(copy)
    if size == (width, height):
        return pixels, pixels
    resample = {"lanczos": Image.LANCZOS, "box": Image.BOX, "nearest": Image.NEAREST}[proxy]
    return pixels, np.asarray(Image.fromarray(pixels).resize(size, resample))


# ---------------------------------------------------------------- models and metrics


@dataclass
class Model:
    name: str
    module: object
    contract: object


def load_models(names=("random", "digits")) -> list[Model]:
    from shufflenet_deploy.zoo import load_model

    models = []
    for name in names:
        if name == "random":
            loaded = load_model("v2_x0_5", "random", seed=0, progress=False)
        elif name == "digits":
            loaded = load_model(None, DIGITS_CHECKPOINT, progress=False)
        else:
            raise ValueError(name)
        models.append(Model(name, loaded.model, loaded.weights.contract))
    return models


def crop_weights(size: int, copy_size: int, new: int, img_size: int, antialias: bool) -> np.ndarray:
    """(img_size, copy_size) resampling matrix for one axis of the app's crop, on a copy of ``copy_size`` pixels.

    The crop is the contract's (``CropGeometry.regionOfInterest``): output pixel i is centred on original
    position (offset + i + 0.5) * size / new, which on the copy is that times copy_size / size. With
    ``antialias`` the filter is the contract's triangle, its radius the local downscale factor (on the
    original picture this is exactly ``preprocess.resample_weights``); without, plain bilinear (radius 1), a
    scaler that does not antialias.
    """
    scale = copy_size / new
    support = max(scale, 1.0) if antialias else 1.0
    offset = (new - img_size) // 2
    weights = np.zeros((img_size, copy_size))
    for i in range(img_size):
        center = (offset + i + 0.5) * scale
        lo = max(math.trunc(center - support + 0.5), 0)
        hi = min(math.trunc(center + support + 0.5), copy_size)
        taps = np.maximum(0.0, 1.0 - np.abs((np.arange(lo, hi) + 0.5 - center) / support))
        weights[i, lo:hi] = taps / taps.sum()
    return weights


def app_crop(copy: np.ndarray, width: int, height: int, contract, antialias: bool = True) -> np.ndarray:
    """The app's crop/scale of a copy of a ``width`` x ``height`` picture: img_size x img_size x 3 float64 pixels."""
    from shufflenet_deploy.preprocess import resized_size

    new_w, new_h = resized_size(width, height, contract.resize_size)
    rows = crop_weights(height, copy.shape[0], new_h, contract.img_size, antialias)
    cols = crop_weights(width, copy.shape[1], new_w, contract.img_size, antialias)
    return np.einsum("ij,jkc,lk->ilc", rows, copy.astype(np.float64), cols, optimize=True)


def model_input(copy: np.ndarray, width: int, height: int, contract, scaler: str) -> np.ndarray:
    """Network input from the app's copy of a ``width`` x ``height`` picture.

    ``triangle``: the contract's antialiased filter at the contract's exact geometry, unrounded floats (so only the
    copy differs from Python); ``triangle-8bit``: the same rounded to 8 bits; ``bilinear``: a scaler that does not
    antialias, rounded to 8 bits.
    """
    from shufflenet_deploy.preprocess import normalize

    pixels = app_crop(copy, width, height, contract, antialias=scaler != "bilinear")
    return normalize(pixels if scaler == "triangle" else np.rint(pixels), contract)


def run(model: Model, batch: list[np.ndarray]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model.module(torch.from_numpy(np.stack(batch))).double().numpy()


def compare(app: np.ndarray, reference: np.ndarray, spread: float, decisive_rel: float) -> dict:
    """Per-image errors of ``app`` against ``reference`` (images x classes), relative to ``spread``."""
    abs_err = np.abs(app - reference).max(axis=1)
    cosine = (app * reference).sum(1) / (np.linalg.norm(app, axis=1) * np.linalg.norm(reference, axis=1) + 1e-30)
    top2 = np.sort(reference, axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    changed = app.argmax(1) != reference.argmax(1)
    decisive = gap > 2 * decisive_rel * spread
    return {
        "rel": (abs_err / spread).tolist(),
        "abs": abs_err.tolist(),
        "cosine": cosine.tolist(),
        "top1_changed": changed.tolist(),
        "decisive_top1_changed": (changed & decisive).tolist(),
        "gap_rel": (gap / spread).tolist(),
    }


#: (ImageIO proxy, scaler after it). "none" is no copy: the full-size picture, as the app used to decode it.
#: The "triangle" rows isolate the downsampling: the same exact-float filter and geometry after the copy as Python
#: applies to the full picture. "triangle-8bit" with "none" is the 8-bit rounding every app path has, for scale;
#: the "bilinear" rows assume Core ML's scaler does not antialias (its filter is not documented).
DOWNSAMPLING = (("lanczos", "triangle"), ("box", "triangle"), ("jpeg-dct", "triangle"))
CONTEXT = (("none", "triangle-8bit"), ("lanczos", "bilinear"), ("none", "bilinear"))


def measure(images: list[TestImage], models: list[Model], variants=DOWNSAMPLING + CONTEXT,
            display_max: int = DISPLAY_MAX, factor: int = FACTOR, decisive_rel: float = 0.01, progress=None) -> dict:
    """{model: {"proxy/scaler": {per-image metric lists, "images", "categories", "spread"}}}."""
    from shufflenet_deploy.preprocess import normalize, resize_and_crop

    results = {}
    for model in models:
        contract = model.contract
        # The full-size resize is the expensive step: once per image, for the reference and the 8-bit row.
        full = [resize_and_crop(image.pixels, contract) for image in images]
        reference = run(model, [normalize(pixels, contract) for pixels in full])
        spread = float(reference.max() - reference.min()) or 1.0
        results[model.name] = {}
        for proxy, scaler in variants:
            references, inputs = [], []
            for index, image in enumerate(images):
                height, width = image.pixels.shape[:2]
                if proxy == "none":
                    source, copy = image.pixels, image.pixels
                else:
                    source, copy = app_views(image.pixels, contract.resize_size, proxy, display_max, factor)
                if source is image.pixels:
                    references.append(reference[index])
                else:  # jpeg-dct: Python decodes the same JPEG at full size
                    references.append(run(model, [normalize(resize_and_crop(source, contract), contract)])[0])
                if copy is image.pixels and scaler != "bilinear":  # exactly Python's resize (checked in the tests)
                    resized = full[index] if scaler == "triangle" else np.rint(full[index])
                    inputs.append(normalize(resized, contract))
                else:
                    inputs.append(model_input(copy, width, height, contract, scaler))
                if progress:
                    progress(f"{model.name} {proxy}/{scaler} {image.name} {width}x{height}")
            entry = compare(run(model, inputs), np.stack(references), spread, decisive_rel)
            entry.update(images=[i.name for i in images], categories=[i.category for i in images], spread=spread)
            results[model.name][f"{proxy}/{scaler}"] = entry
    return results


def summarise(results: dict) -> list[dict]:
    """One row per model, proxy and image category (plus 'all')."""
    rows = []
    for model, by_proxy in results.items():
        for proxy, entry in by_proxy.items():
            categories = entry["categories"]
            for category in [*dict.fromkeys(categories), "all"]:
                pick = [i for i, c in enumerate(categories) if category in ("all", c)]
                rows.append({
                    "model": model, "proxy": proxy, "category": category, "n": len(pick),
                    "max_rel": max(entry["rel"][i] for i in pick),
                    "max_abs": max(entry["abs"][i] for i in pick),
                    "min_cosine": min(entry["cosine"][i] for i in pick),
                    "top1_changed": sum(entry["top1_changed"][i] for i in pick),
                    "decisive_top1_changed": sum(entry["decisive_top1_changed"][i] for i in pick),
                })  # fmt: skip
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ["| model | ImageIO proxy / scaler | images | n | max abs err / range | max abs err | min cosine | top-1 changes (decisive) |",
             "|---|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['model']} | {r['proxy']} | {r['category']} | {r['n']} | {r['max_rel']:.2e} | "
                     f"{r['max_abs']:.3g} | {r['min_cosine']:.6f} | {r['top1_changed']} ({r['decisive_top1_changed']}) |")  # fmt: skip
    return "\n".join(lines)


# ---------------------------------------------------------------- image sets


def full_set(photo_paths: list[Path]) -> list[TestImage]:
    """Photos as they are (about 4 MP) and enlarged to 24 MP camera frames, synthetic worst cases at 24 and
    48 MP, and handwritten digits filling 24 MP frames."""
    images = []
    for seed, path in enumerate(photo_paths):
        photo = load_rgb(path)
        name = path.parent.parent.parent.name if path.parent.name == "images" else path.stem
        images.append(TestImage(name, "photo", photo))
        images.append(TestImage(f"{name}@24MP", "camera", camera_photo(photo, CAMERA_SIZES["24MP"], seed)))
    for seed, kind in enumerate(SYNTHETIC_KINDS):
        for label, (width, height) in CAMERA_SIZES.items():
            images.append(TestImage(f"{kind}@{label}", "synthetic", synthetic(kind, width, height, seed)))
        images.append(TestImage(f"{kind}@24MP-portrait", "synthetic", synthetic(kind, 4284, 5712, seed + 10)))
    for seed, index in enumerate((0, 1, 7, 13)):
        width, height = CAMERA_SIZES["24MP"]
        images.append(TestImage(f"digit{index}@24MP", "digit", digit_photo(index, width, height, seed)))
    return images


def quick_set() -> list[TestImage]:
    """Small enough for a unit test (about 60 MP in total), still a 1.5-2x copy and a 6-60x resize."""
    sizes = [(4032, 3024), (3024, 4032), (4000, 2250), (3264, 2448)]
    images = [TestImage(f"{kind}@{w}x{h}", "synthetic", synthetic(kind, w, h, seed))
              for seed, (kind, (w, h)) in enumerate(zip(SYNTHETIC_KINDS, sizes))]  # fmt: skip
    images.append(TestImage("digit7@4032x3024", "digit", digit_photo(7, 4032, 3024, 5)))
    return images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, help="A folder of photos (default: Debian's Plasma wallpaper photos, if installed).")
    parser.add_argument("--quick", action="store_true", help="Only the small synthetic set the unit test uses.")
    parser.add_argument("--display-max", type=int, default=DISPLAY_MAX,
                        help=f"Longer side of the copy (default {DISPLAY_MAX}; 0 with --factor 1: a copy at the final size).")
    parser.add_argument("--factor", type=int, default=FACTOR,
                        help=f"Least shorter side of the copy / resize_size (default {FACTOR}).")
    parser.add_argument("--no-context", action="store_true", help="Only the downsampling rows, not the 8-bit and bilinear context rows.")
    parser.add_argument("--json", type=Path, help="Write every per-image number here.")
    args = parser.parse_args(argv)

    if args.quick:
        images = quick_set()
    else:
        photos = wallpaper_photos(args.photos)
        if not photos:
            print("no photos found: pass --photos DIR (or apt-get install plasma-workspace-wallpapers)", file=sys.stderr)
        images = full_set(photos)
    models = load_models()
    variants = DOWNSAMPLING if args.no_context else DOWNSAMPLING + CONTEXT
    results = measure(images, models, variants=variants, display_max=args.display_max, factor=args.factor,
                      progress=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    rows = summarise(results)
    print(format_rows(rows))
    if args.json:
        args.json.write_text(json.dumps({"display_max": args.display_max, "factor": args.factor, "summary": rows,
                                         "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
