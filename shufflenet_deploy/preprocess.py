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
    """Decode an image file to an HxWx3 uint8 RGB array, honouring EXIF orientation."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise SdeployError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise SdeployError(f"cannot read image {path}: {exc}") from None


def resized_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """(width, height) after scaling the shorter side to ``shorter``."""
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def resample_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) matrix of the antialiased triangle filter described above."""
    scale = in_size / out_size
    support = max(scale, 1.0)
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(math.trunc(center - support + 0.5), 0)
        hi = min(math.trunc(center + support + 0.5), in_size)
        taps = np.maximum(0.0, 1.0 - np.abs((np.arange(lo, hi) + 0.5 - center) / support))
        weights[i, lo:hi] = taps / taps.sum()
    return weights


def resize_and_crop(image: np.ndarray, contract: InputContract) -> np.ndarray:
    """Steps 2 and 3: HxWx3 uint8 -> img_size x img_size x 3 float64 pixels in [0, 255]."""
    height, width = image.shape[:2]
    new_w, new_h = resized_size(width, height, contract.resize_size)
    size = contract.img_size
    top, left = (new_h - size) // 2, (new_w - size) // 2
    # Only the rows/columns inside the crop window are ever computed.
    rows = resample_weights(height, new_h)[top : top + size]
    cols = resample_weights(width, new_w)[left : left + size]
    pixels = image.astype(np.float64)
    return np.einsum("ij,jkc,lk->ilc", rows, pixels, cols, optimize=True)


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
