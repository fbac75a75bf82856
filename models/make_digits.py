"""Write scikit-learn's bundled handwritten digits as an image-folder dataset.

``load_digits`` ships 1,797 8x8 images with 17 grey levels (0 = background,
16 = ink) inside scikit-learn itself, so the data needs no download.  Each
image is upscaled with the input contract's triangle filter (bilinear for
upscaling, computed in float64, see ``shufflenet_deploy.preprocess``), grey
levels are scaled 0..16 -> 0..255, and the result is saved as an RGB PNG::

    OUT/train/<digit>/<index>.png
    OUT/heldout/<digit>/<index>.png

``<index>`` is the image's position in ``load_digits()``.  The split is
stratified (the same fraction of every digit is held out) and seeded; the
same arguments write byte-identical files on every run.

Usage: python models/make_digits.py --out digits [--size 64] [--heldout-fraction 0.2] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

SPLITS = ("train", "heldout")
DIGIT_LEVELS = 16  # load_digits values run 0..16


def load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images N x 8 x 8 float64 in 0..16, targets N int)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("make_digits needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    return digits.images, digits.target


def stratified_split(targets: np.ndarray, heldout_fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of held-out images: ``round(fraction * n)`` random images of every class."""
    rng = np.random.default_rng(seed)
    heldout = np.zeros(len(targets), dtype=bool)
    for label in np.unique(targets):
        members = np.flatnonzero(targets == label)
        chosen = rng.permutation(members)[: round(heldout_fraction * len(members))]
        heldout[chosen] = True
    return heldout


@lru_cache(maxsize=4)
def _upscale_weights(in_size: int, out_size: int) -> np.ndarray:
    from shufflenet_deploy.preprocess import resample_weights

    return resample_weights(in_size, out_size)


def upscale(image: np.ndarray, size: int) -> np.ndarray:
    """An 8x8 grey image in 0..16 -> size x size x 3 uint8 RGB."""
    height, width = image.shape
    rows, cols = _upscale_weights(height, size), _upscale_weights(width, size)
    grey = rows @ (image * (255 / DIGIT_LEVELS)) @ cols.T
    pixels = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return np.repeat(pixels[:, :, None], 3, axis=2)


def write_digits(out: str | Path, size: int = 64, heldout_fraction: float = 0.2, seed: int = 0) -> dict[str, int]:
    """Write the dataset under ``out``; returns the number of images per split."""
    from PIL import Image

    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout fraction must be between 0 and 1, got {heldout_fraction}")
    if size < 8:
        raise ValueError(f"size must be at least 8 (the digits are 8x8), got {size}")
    images, targets = load_sklearn_digits()
    heldout = stratified_split(targets, heldout_fraction, seed)
    out = Path(out)
    counts = dict.fromkeys(SPLITS, 0)
    for index, (image, label) in enumerate(zip(images, targets, strict=True)):
        split = SPLITS[int(heldout[index])]
        folder = out / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        # No metadata chunks: the PNG bytes depend on the pixels only.
        Image.fromarray(upscale(image, size)).save(folder / f"{index:04d}.png", optimize=False)
        counts[split] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="Output folder (train/ and heldout/ are created in it).")
    parser.add_argument("--size", type=int, default=64, help="Side of the upscaled images in pixels (default 64).")
    parser.add_argument("--heldout-fraction", type=float, default=0.2, help="Share of every digit held out (default 0.2).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the split (default 0).")
    args = parser.parse_args(argv)
    try:
        counts = write_digits(args.out, args.size, args.heldout_fraction, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"wrote {counts['train']} training and {counts['heldout']} held-out {args.size}x{args.size} images under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
