"""The input contract: how an image becomes the network's input tensor.

This module is the single definition that every target, runtime and demo
app follows; the manifest stores ``InputContract.to_dict()`` and the Kotlin
and JavaScript demos re-implement exactly these steps:

1. Decode to RGB (alpha dropped, EXIF orientation applied), uint8.
2. Resize so the *shorter* side equals ``resize_size``; the longer side is
   ``trunc(resize_size * long / short)``.  Resampling is separable with a
   triangle (bilinear) kernel whose radius grows with the downscale factor,
   which antialiases like Pillow's BILINEAR.  For output pixel ``i`` along an
   axis with ``scale = in / out`` and ``support = max(scale, 1)``::

       center = (i + 0.5) * scale
       lo = max(trunc(center - support + 0.5), 0)
       hi = min(trunc(center + support + 0.5), in)
       w_j = max(0, 1 - |(j + 0.5 - center) / support|)   for lo <= j < hi
       out_i = sum_j w_j * in_j / sum_j w_j

   Arithmetic is float64 and pixels are not re-quantised to uint8, so other
   languages reproduce it to ~1e-6 (Pillow's own resize uses 8-bit fixed point
   and cannot be matched that closely).
3. Centre-crop ``img_size`` x ``img_size`` at offset ``floor((resized - img_size) / 2)``.
4. Reorder channels to ``color_order`` (RGB, or BGR for the official V1
   checkpoints), then ``(pixel * scale - mean) / std`` per channel (mean and
   std listed in that order), laid out CHW, as float32.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .errors import SdeployError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MIN_IMG_SIZE = 32
#: Largest input side: 4x the usual 224 and ~1 GB of activations at batch 8; beyond it nothing sensible runs on a phone.
MAX_IMG_SIZE = 2048
COLOR_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class InputContract:
    img_size: int = 224
    resize_size: int = 256
    interpolation: str = "bilinear-antialias"
    crop: str = "center"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scale: float = 1 / 255
    color_order: str = "RGB"
    layout: str = "NCHW"
    resize: str = "shorter-side"

    def __post_init__(self):
        check_img_size(self.img_size)
        if not isinstance(self.resize_size, int) or not self.img_size <= self.resize_size <= 4 * MAX_IMG_SIZE:
            raise SdeployError(f"resize size {self.resize_size} must be a whole number from the crop ({self.img_size}) "
                               f"to {4 * MAX_IMG_SIZE}")  # fmt: skip
        if self.color_order not in COLOR_ORDERS:
            raise SdeployError(f"colour order {self.color_order!r} must be RGB or BGR")
        numbers = [*self.mean, *self.std, self.scale]
        if len(self.mean) != 3 or len(self.std) != 3 or not all(math.isfinite(v) for v in numbers):
            raise SdeployError("the input contract needs three finite mean and std values and a finite scale")
        if min(*self.std, self.scale) <= 0:
            raise SdeployError("the input contract's std and scale must be positive")

    @property
    def crop_ratio(self) -> float:
        return self.img_size / self.resize_size

    def at_size(self, img_size: int) -> InputContract:
        """The same recipe for another input size, keeping the resize/crop ratio."""
        if img_size == self.img_size:
            return self
        check_img_size(img_size)
        return replace(self, img_size=img_size, resize_size=max(img_size, round(img_size / self.crop_ratio)))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> InputContract:
        """The contract a manifest or checkpoint recorded; anything malformed is one clear error."""
        if not isinstance(data, dict):
            raise SdeployError(f"an input contract must be a JSON object, got {type(data).__name__}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            for key in ("mean", "std"):
                if key in known:
                    known[key] = tuple(_number(v) for v in known[key])
            if "scale" in known:
                known["scale"] = _number(known["scale"])
        except TypeError:
            raise SdeployError("the input contract's mean, std and scale must be numbers") from None
        return cls(**known)


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(value)
    return float(value)


def check_img_size(img_size: int) -> None:
    if not isinstance(img_size, int) or isinstance(img_size, bool):
        raise SdeployError(f"image size must be a whole number, got {img_size!r}")
    if img_size < MIN_IMG_SIZE:
        raise SdeployError(
            f"image size {img_size} is too small: ShuffleNet downsamples 32x, use --img-size {MIN_IMG_SIZE} or more"
        )
    if img_size > MAX_IMG_SIZE:
        raise SdeployError(f"image size {img_size} is too large: use --img-size {MAX_IMG_SIZE} or less")


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file to an HxWx3 uint8 RGB array, honouring EXIF orientation.

    Sizes are checked from the header, before any pixel is decoded (see
    :data:`MAX_IMAGE_PIXELS` and :data:`MAX_ASPECT_RATIO`).  High bit depths
    are scaled to 8 bits, not clipped; alpha is dropped.
    """
    from PIL import ImageOps

    with open_image(path) as image:
        return _to_rgb8(ImageOps.exif_transpose(image), path)


def check_image_file(path: str | Path) -> None:
    """That ``path`` is an image sdeploy will decode, from its header alone (cheap: no pixel is decoded)."""
    with open_image(path):
        pass


@contextlib.contextmanager
def open_image(path: str | Path):
    """Pillow's image with its size checked; every way a file can fail to be an image is one SdeployError."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise SdeployError(f"image not found: {path}" if not path.exists() else f"{path} is not an image file")
    # Our limits replace Pillow's bomb check, which runs at the same point (the header) but says less.
    pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as image:
            check_image_size(image.size, path)
            yield image
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise SdeployError(f"cannot read image {path}: {reason}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit


#: Largest image decoded: a 108 MP phone photo fits, a decompression bomb does not.
MAX_IMAGE_PIXELS = 120_000_000
#: Longest side over shortest side: panoramas and receipts fit; a 5000x1 strip is not a photo.
MAX_ASPECT_RATIO = 32


def check_image_size(size: tuple[int, int], path: str | Path) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise SdeployError(f"{path} has no pixels ({width}x{height})")
    if width * height > MAX_IMAGE_PIXELS:
        raise SdeployError(f"{path} is {width}x{height} ({width * height / 1e6:.0f} million pixels), over the "
                           f"{MAX_IMAGE_PIXELS / 1e6:.0f} million sdeploy decodes; downscale it first")  # fmt: skip
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise SdeployError(f"{path} is {width}x{height}: sides more than {MAX_ASPECT_RATIO}:1 apart are not an image "
                           "this classifier can crop sensibly; crop it first")  # fmt: skip


def _to_rgb8(image, path) -> np.ndarray:
    """8-bit RGB from any Pillow mode: 16-bit and 32-bit integers scaled down, floats from 0..1 or 0..255."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image, dtype=np.int64)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise SdeployError(f"{path} holds 32-bit integer pixels outside 0..65535, which is not an image sdeploy reads")
        return np.repeat((values >> 8).astype(np.uint8)[..., None], 3, axis=2)
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all() or values.min(initial=0) < 0 or values.max(initial=0) > 255:
            raise SdeployError(f"{path} holds floating-point pixels outside 0..255 (or NaN); convert it to 8-bit first")
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        return np.repeat(np.rint(values * scale).astype(np.uint8)[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def resized_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """(width, height) after scaling the shorter side to ``shorter``."""
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def resample_weights(in_size: int, out_size: int, start: int = 0, count: int | None = None) -> np.ndarray:
    """(count, in_size) rows ``start..start+count`` of the antialiased triangle filter described above.

    Only the output pixels asked for are computed, so a crop of a huge resize
    costs its own size, never ``out_size * in_size``.
    """
    count = out_size - start if count is None else count
    scale = in_size / out_size
    support = max(scale, 1.0)
    weights = np.zeros((count, in_size))
    for row, i in enumerate(range(start, start + count)):
        center = (i + 0.5) * scale
        lo = max(math.trunc(center - support + 0.5), 0)
        hi = min(math.trunc(center + support + 0.5), in_size)
        taps = np.maximum(0.0, 1.0 - np.abs((np.arange(lo, hi) + 0.5 - center) / support))
        weights[row, lo:hi] = taps / taps.sum()
    return weights


#: Input rows converted to float64 at a time: bounds the working memory of a resize from a huge photo.
_ROW_BLOCK = 256


def resize_and_crop(image: np.ndarray, contract: InputContract) -> np.ndarray:
    """Steps 2 and 3: HxWx3 uint8 -> img_size x img_size x 3 float64 pixels in [0, 255].

    Only the crop window is computed, and only the input rows and columns it
    reads are touched, a block of rows at a time, so memory stays a few times
    the crop's size plus one float64 block of the photo.
    """
    height, width = image.shape[:2]
    new_w, new_h = resized_size(width, height, contract.resize_size)
    size = contract.img_size
    top, left = (new_h - size) // 2, (new_w - size) // 2
    rows = resample_weights(height, new_h, top, size)
    cols = resample_weights(width, new_w, left, size)
    row_lo, row_hi = _support(rows)
    col_lo, col_hi = _support(cols)
    cols = cols[:, col_lo:col_hi]
    out = np.zeros((size, size, 3))
    for start in range(row_lo, row_hi, _ROW_BLOCK):
        stop = min(start + _ROW_BLOCK, row_hi)
        block = image[start:stop, col_lo:col_hi].astype(np.float64)
        out += np.einsum("ij,jkc,lk->ilc", rows[:, start:stop], block, cols, optimize=True)
    return out


def _support(weights: np.ndarray) -> tuple[int, int]:
    """The range of input indices with a nonzero weight."""
    used = np.flatnonzero(weights.any(axis=0))
    return int(used[0]), int(used[-1]) + 1


def normalize(pixels: np.ndarray, contract: InputContract) -> np.ndarray:
    """Step 4: HxWx3 pixels in [0, 255] -> 3xHxW float32 network input."""
    if contract.color_order == "BGR":
        pixels = pixels[..., ::-1]
    mean = np.asarray(contract.mean, dtype=np.float64)
    std = np.asarray(contract.std, dtype=np.float64)
    scaled = (pixels * contract.scale - mean) / std
    return np.ascontiguousarray(scaled.transpose(2, 0, 1), dtype=np.float32)


def denormalize(tensor: np.ndarray, contract: InputContract) -> np.ndarray:
    """Inverse of :func:`normalize` for an NCHW batch: pixels in [0, 255], NCHW float, in the model's colour order."""
    mean = np.asarray(contract.mean, dtype=np.float64).reshape(1, 3, 1, 1)
    std = np.asarray(contract.std, dtype=np.float64).reshape(1, 3, 1, 1)
    return (tensor.astype(np.float64) * std + mean) / contract.scale


def preprocess(image: np.ndarray | str | Path, contract: InputContract) -> np.ndarray:
    """An image (array or path) -> 3 x img_size x img_size float32, exactly as every target expects."""
    if not isinstance(image, np.ndarray):
        image = load_image(image)
    return normalize(resize_and_crop(image, contract), contract)


def preprocess_8bit(image: np.ndarray | str | Path, contract: InputContract) -> np.ndarray:
    """:func:`preprocess` with the resized pixels rounded to 8 bits, as an app's bitmap holds them.

    Image-input artifacts (Core ML) only ever see 8-bit pixels, so comparing
    runtimes, or training for them, on these views keeps every side on the same data.
    """
    if not isinstance(image, np.ndarray):
        image = load_image(image)
    return normalize(np.rint(resize_and_crop(image, contract)), contract)


def preprocess_batch(paths: list[Path], contract: InputContract) -> np.ndarray:
    if not paths:
        return np.zeros((0, 3, contract.img_size, contract.img_size), np.float32)
    return np.stack([preprocess(path, contract) for path in paths])


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted for reproducible order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SdeployError(f"image folder not found: {folder}")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def random_images(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Seeded synthetic photos, (count, size, size, 3) uint8.

    Each image is a smooth random colour field plus noise of random strength:
    images differ in colour and layout the way photos do, so a network's
    outputs differ between them (i.i.d. pixel noise would make every image
    look alike after global pooling).
    """
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    for index in range(count):
        coarse = rng.uniform(0, 255, (4, 4, 3))
        upsample = resample_weights(4, size)
        field = np.einsum("ij,jkc,lk->ilc", upsample, coarse, upsample)
        noise = rng.normal(0, rng.uniform(5, 40), (size, size, 3))
        images[index] = np.clip(np.rint(field + noise), 0, 255).astype(np.uint8)
    return images


def random_inputs(count: int, contract: InputContract, seed: int = 0) -> np.ndarray:
    """:func:`random_images` normalised by ``contract``: in-distribution NCHW float32 inputs."""
    images = random_images(count, contract.img_size, seed)
    return np.stack([normalize(image.astype(np.float64), contract) for image in images])
