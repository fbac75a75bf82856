"""What the Android app's sampled photo decoding costs in parity with Python, emulated in Python.

The app decodes a large JPEG with BitmapFactory's ``inSampleSize`` (core/DecodePlan.kt: the
largest power of two up to 8 that keeps the shorter side at least 2 x ``resize_size``; other
formats only above 16 MP), then applies the exact Python preprocessing to the smaller bitmap.  Python (``sdeploy classify``,
``preprocess.load_image``) always resizes from the full-resolution decode.  This script measures
the difference in the network's outputs.

How Android shrinks while decoding (Skia's SkSampledCodec, which BitmapFactory uses):

* JPEG, sample 2/4/8: libjpeg-turbo's scaled IDCT (``scale_denom``), output ``ceil(w / s)`` --
  emulated with Pillow's ``Image.draft``, which drives the same libjpeg scaling.  Beyond 8 the
  rest is point-sampled (does not happen here: the rule stops at 8 except for >16 MP results).
* The other formats SkSampledCodec decodes (PNG, HEIF, GIF, BMP, ...): point sampling -- one
  pixel of every s x s block, starting at ``s // 2`` in both directions, output ``floor(w / s)``
  (SkSampledCodec::sampledDecode, get_start_coord).  Emulated exactly with NumPy.  (WebP goes
  through libwebp's own scaler instead; the app treats it like PNG anyway.)
  ``--png-mode box`` uses Pillow's ``reduce`` (a box average) instead, for comparison.

Decoders differ slightly even at full size (IDCT and chroma upsampling implementations, colour
management: Android converts wide-gamut photos to sRGB, Pillow ignores ICC profiles); that part is
not measured here, only what sampling adds.

Usage (from the repository root, with the project's venv)::

    python android_demo/tools/sampled_decode_parity.py            # the full set: 52 images, a few minutes
    python android_demo/tools/sampled_decode_parity.py --quick    # the small set tests/test_android_demo.py uses
    python android_demo/tools/sampled_decode_parity.py --json out.json

tests/test_android_demo.py imports :func:`measure` and checks the quick set against the bound
documented in android_demo/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DIGITS_MODEL = REPO / "models" / "digits_v2_x0_5.pt"

MIN_SHORTER_FACTOR = 2  # core/DecodePlan.kt
MAX_SAMPLE_SIZE = 8
MAX_PIXELS = 16_000_000

#: (width, height, resize_size, jpeg, inSampleSize): the cases of DecodePlanTest.kt, checked by the pytest suite too.
SAMPLE_SIZE_CASES = [
    (6000, 4000, 256, True, 4), (4000, 6000, 256, True, 4), (4032, 3024, 256, True, 4), (4624, 3472, 232, True, 4),
    (1024, 1024, 256, True, 2), (1023, 1023, 256, True, 1), (1024, 768, 256, True, 1), (100, 50, 256, True, 1),
    (3000, 3000, 64, True, 8), (60000, 4000, 256, True, 4), (200000, 4000, 256, True, 8), (100000, 20000, 256, True, 16),
    (6000, 4000, 256, False, 2), (4032, 3024, 256, False, 1), (4000, 4000, 256, False, 1), (4001, 4000, 256, False, 2),
    (12000, 9000, 256, False, 4), (640, 480, 256, False, 1),
]  # fmt: skip

_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}  # fmt: skip


def sample_size(width: int, height: int, resize_size: int, jpeg: bool) -> int:
    """core/DecodePlan.kt's rule, line for line (``jpeg``: the format Android shrinks in the DCT domain)."""
    shorter = min(width, height)
    sample = 1
    while jpeg and sample < MAX_SAMPLE_SIZE and shorter // (sample * 2) >= MIN_SHORTER_FACTOR * resize_size:
        sample *= 2
    while (width // sample) * (height // sample) > MAX_PIXELS:
        sample *= 2
    return sample


def point_sample(pixels: np.ndarray, sample: int) -> np.ndarray:
    """SkSampledCodec's sampling: pixel ``start + k * sample`` with ``start = sample // 2``, ``floor(n / sample)`` of them."""
    if sample == 1:
        return pixels
    height, width = pixels.shape[0] // sample, pixels.shape[1] // sample
    start = sample // 2
    return pixels[start : start + height * sample : sample, start : start + width * sample : sample]


def decode_sampled(path: str | Path, sample: int, png_mode: str = "point") -> np.ndarray:
    """The RGB pixels BitmapFactory gives for ``inSampleSize = sample``, upright (EXIF applied after sampling, as the app does)."""
    with Image.open(path) as image:
        orientation = image.getexif().get(0x0112, 1)
        rest = sample
        if image.format == "JPEG" and sample > 1:
            native = next(s for s in (8, 4, 2, 1) if sample % s == 0)
            width, height = image.size
            image.draft("RGB", (width // native, height // native))
            expected = (math.ceil(width / native), math.ceil(height / native))
            if image.size != expected:
                raise RuntimeError(f"{path}: libjpeg scaled to {image.size}, expected {expected}")
            rest = sample // native
        if rest > 1 and png_mode == "box":
            image = image.convert("RGB").reduce(rest)
            rest = 1
        pixels = point_sample(np.asarray(image.convert("RGB")), rest)
    if orientation in _TRANSPOSE:
        pixels = np.asarray(Image.fromarray(pixels).transpose(_TRANSPOSE[orientation]))
    return pixels


# ---------------------------------------------------------------- test images


def _sample_photos() -> list[np.ndarray]:
    """scikit-learn's two bundled photos (china.jpg, flower.jpg: 640 x 427, real camera detail)."""
    from sklearn.datasets import load_sample_images

    return [np.asarray(image) for image in load_sample_images().images]


def mosaic(width: int, height: int, seed: int) -> np.ndarray:
    """A photo-sized image with photographic detail at full resolution: random crops of the two photos, tiled."""
    rng = np.random.default_rng(seed)
    photos = _sample_photos()
    canvas = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, 400):
        for left in range(0, width, 600):
            photo = photos[rng.integers(len(photos))]
            y, x = rng.integers(0, photo.shape[0] - 400), rng.integers(0, photo.shape[1] - 600)
            tile = photo[y : y + 400, x : x + 600]
            if rng.random() < 0.5:
                tile = tile[:, ::-1]
            h, w = min(400, height - top), min(600, width - left)
            canvas[top : top + h, left : left + w] = tile[:h, :w]
    return canvas


def upscaled_photo(width: int, height: int, seed: int, noise: float = 3.0) -> np.ndarray:
    """One photo enlarged with Lanczos, plus sensor-like noise: smooth content, noisy pixels."""
    rng = np.random.default_rng(seed)
    photo = _sample_photos()[seed % 2]
    big = np.asarray(Image.fromarray(photo).resize((width, height), Image.Resampling.LANCZOS), np.float64)
    return np.clip(np.rint(big + rng.normal(0, noise, big.shape)), 0, 255).astype(np.uint8)


def synthetic(width: int, height: int, seed: int) -> np.ndarray:
    """preprocess.random_images' recipe (smooth colour field + strong per-pixel noise) at photo size."""
    from shufflenet_deploy.preprocess import resample_weights

    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (4, 4, 3))
    field = np.einsum("ij,jkc,lk->ilc", resample_weights(4, height), coarse, resample_weights(4, width))
    noise = rng.normal(0, rng.uniform(5, 40), (height, width, 3))
    return np.clip(np.rint(field + noise), 0, 255).astype(np.uint8)


def gratings(width: int, height: int, seed: int) -> np.ndarray:
    """The worst case for point sampling: fine sinusoidal gratings (periods of 2.5-7 pixels) in three colours."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.empty((height, width, 3))
    for c in range(3):
        period, angle = rng.uniform(2.5, 7.0), rng.uniform(0, np.pi)
        phase = (x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period
        out[..., c] = 128 + 100 * np.sin(phase) * (0.5 + 0.5 * np.sin(x / width * np.pi))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def digit_photos(size: int, count: int, noise: float = 3.0) -> list[tuple[np.ndarray, int]]:
    """Held-out handwritten digits (models/make_digits.py's split and upscaling, white ink on black) as large
    noisy 'photos': ``count`` of the 359 held-out digits, spread evenly."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_digits", REPO / "models" / "make_digits.py")
    make_digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_digits)
    images, targets = make_digits.load_sklearn_digits()
    heldout = np.flatnonzero(make_digits.stratified_split(targets, 0.2, 0))
    chosen = heldout[np.linspace(0, len(heldout) - 1, count).round().astype(int)]
    rng = np.random.default_rng(0)
    out = []
    for index in chosen:
        clean = make_digits.upscale(images[index], size)[..., 0].astype(np.float64)
        grey = np.clip(np.rint(clean + rng.normal(0, noise, clean.shape)), 0, 255).astype(np.uint8)
        out.append((np.repeat(grey[..., None], 3, axis=2), int(targets[index])))
    return out


# ---------------------------------------------------------------- measurement


@dataclass
class Row:
    model: str
    image: str
    file: str
    size: str
    sample: int
    pixel_max: float  # max |input pixel (sampled) - input pixel (full)|, grey levels 0..255, after resize + crop
    pixel_rms: float
    rounding_rms: float  # for scale: what rounding the resized pixels to 8 bits changes (an image-input model's view)
    max_abs: float  # max |logit(sampled) - logit(full)|
    logit_range: float  # max - min of the full-resolution logits
    rel: float  # max_abs / logit_range
    top1_same: bool
    top2_gap: float  # of the full-resolution logits: how decisive the image is
    label: int | None = None
    top1_full: int = -1
    top1_sampled: int = -1


def _logits(model, contract, resized: np.ndarray) -> np.ndarray:
    import torch

    from shufflenet_deploy.preprocess import normalize

    with torch.no_grad():
        return model(torch.from_numpy(normalize(resized, contract))[None]).numpy()[0].astype(np.float64)


def _compare(name, model_name, model, contract, path: Path, png_mode: str, label=None) -> Row:
    from shufflenet_deploy.preprocess import load_image, resize_and_crop

    full = load_image(path)
    height, width = full.shape[:2]
    sample = sample_size(width, height, contract.resize_size, path.suffix == ".jpg")
    reference_px = resize_and_crop(full, contract)
    ours_px = resize_and_crop(decode_sampled(path, sample, png_mode), contract)
    reference, ours = _logits(model, contract, reference_px), _logits(model, contract, ours_px)
    spread = float(reference.max() - reference.min()) or 1.0
    top2 = np.sort(reference)[-2:]
    pixels = ours_px - reference_px
    return Row(model_name, name, path.suffix.lstrip("."), f"{width}x{height}", sample,
               float(np.abs(pixels).max()), float(np.sqrt((pixels**2).mean())),
               float(np.sqrt(((np.rint(reference_px) - reference_px) ** 2).mean())),
               float(np.abs(ours - reference).max()), spread, float(np.abs(ours - reference).max()) / spread,
               bool(ours.argmax() == reference.argmax()), float(top2[1] - top2[0]), label,
               int(reference.argmax()), int(ours.argmax()))  # fmt: skip


def _save(pixels: np.ndarray, path: Path) -> Path:
    if path.suffix == ".jpg":
        Image.fromarray(pixels).save(path, quality=92)  # Pillow's default 4:2:0 chroma, like phone cameras
    else:
        Image.fromarray(pixels).save(path)
    return path


def measure(quick: bool = False, png_mode: str = "point", workdir: str | Path | None = None) -> list[Row]:
    """Every test image through both decodes and both models; ``quick`` is the small set the pytest suite runs."""
    import torch

    from shufflenet_deploy.zoo import load_model

    torch.set_num_threads(1)
    random_model = load_model("v2_x0_5", "random")
    digits_model = load_model(None, DIGITS_MODEL)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        if quick:
            sets = [
                ("mosaic", mosaic, ".jpg", [(2048, 1536), (3072, 2304)]),
                ("synthetic", synthetic, ".png", [(4096, 4096)]),
            ]
            digit_size, digit_count = 1024, 6
        else:
            sets = [("mosaic", mosaic, ".jpg", [(2048, 1536), (4032, 3024), (3024, 4032), (6000, 4000)]),
                    ("upscaled", upscaled_photo, ".jpg", [(4032, 3024), (6000, 4000)]),
                    ("synthetic", synthetic, ".jpg", [(4032, 3024)]), ("gratings", gratings, ".jpg", [(4032, 3024)]),
                    ("mosaic", mosaic, ".png", [(4032, 3024), (6000, 4000)]), ("synthetic", synthetic, ".png", [(6000, 4000)]),
                    ("gratings", gratings, ".png", [(6000, 4000)])]  # fmt: skip
            digit_size, digit_count = 2048, 40
        for seed, (name, make, suffix, sizes) in enumerate(sets):
            for width, height in sizes:
                path = _save(make(width, height, seed), tmp / f"{name}-{width}x{height}{suffix}")
                rows.append(
                    _compare(name, "v2_x0_5 random", random_model.model, random_model.weights.contract, path, png_mode)
                )
                path.unlink()
        for i, (pixels, label) in enumerate(digit_photos(digit_size, digit_count)):
            path = _save(pixels, tmp / f"digit-{i}.jpg")
            rows.append(
                _compare("digit", "digits", digits_model.model, digits_model.weights.contract, path, png_mode, label)
            )
            path.unlink()
    return rows


def summarize(rows: list[Row]) -> dict:
    """Worst relative error and top-1 changes per model and file type; digits accuracy both ways."""
    out: dict = {}
    for key in sorted({(r.model, r.file) for r in rows}):
        group = [r for r in rows if (r.model, r.file) == key]
        sampled = [r for r in group if r.sample > 1]
        out[f"{key[0]} / {key[1]}"] = {
            "images": len(group),
            "sampled": len(sampled),
            "pixel_max": max(r.pixel_max for r in group),
            "pixel_rms": max(r.pixel_rms for r in group),
            "rounding_rms": max(r.rounding_rms for r in group),
            "max_abs": max(r.max_abs for r in group),
            "max_rel": max(r.rel for r in group),
            "median_rel": float(np.median([r.rel for r in group])),
            "top1_changed": sum(not r.top1_same for r in group),
            "samples": sorted({r.sample for r in group}),
        }
    digits = [r for r in rows if r.label is not None]
    if digits:
        out["digits accuracy"] = {
            "full": sum(r.top1_full == r.label for r in digits) / len(digits),
            "sampled": sum(r.top1_sampled == r.label for r in digits) / len(digits),
            "images": len(digits),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small set tests/test_android_demo.py runs")
    parser.add_argument(
        "--png-mode", choices=("point", "box"), default="point", help="Android's point sampling, or a box average"
    )
    parser.add_argument("--json", help="write every row and the summary here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = measure(args.quick, args.png_mode)
    print(f"{'model':<16} {'image':<10} {'file':<4} {'size':>9} {'1/s':>3} {'px max':>7} {'px rms':>6} {'round':>5} "
          f"{'max|d|':>9} {'range':>7} {'rel':>9} {'gap':>6} top-1")  # fmt: skip
    for r in rows:
        print(f"{r.model:<16} {r.image:<10} {r.file:<4} {r.size:>9} {r.sample:>3} {r.pixel_max:7.2f} {r.pixel_rms:6.3f} "
              f"{r.rounding_rms:5.3f} {r.max_abs:9.4f} {r.logit_range:7.2f} {r.rel:9.2e} {r.top2_gap:6.2f} "
              f"{'same' if r.top1_same else 'CHANGED'}")  # fmt: skip
    summary = summarize(rows)
    print(json.dumps(summary, indent=1))
    print(f"{len(rows)} images in {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": [asdict(r) for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
