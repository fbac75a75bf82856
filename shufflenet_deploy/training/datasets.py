"""Image-folder datasets for ``sdeploy finetune``: reading, splitting, training views and evaluation views.

A dataset is a folder with one subfolder per class (torchvision's
ImageFolder layout); classes are the subfolder names in sorted order, and
that order is the model's label order.

Evaluation follows the input contract exactly as ``sdeploy verify`` feeds
an app (``preprocess.py``: shorter side resized to ``resize_size``, centre
crop, pixels rounded to 8 bits, normalised), so the held-out accuracy that
training records is the accuracy every exported artifact is checked against.

Training views are random resized crops: a box of random area and aspect
ratio, anywhere in the image (a box larger than the image repeats its edge
pixels), resampled to ``img_size`` with the contract's triangle filter, then
an optional horizontal flip.  Every random draw comes from a NumPy generator
seeded by (seed, epoch, image index), so a run is reproducible whatever the
number of loader workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import SdeployError
from ..preprocess import IMAGE_SUFFIXES, InputContract, list_images, load_image, normalize, preprocess_8bit

#: Aspect ratios of training crops, as in torchvision's RandomResizedCrop.
CROP_ASPECT_RANGE = (3 / 4, 4 / 3)
#: Separate random streams for the sample order and the per-image views.
_ORDER_STREAM, _VIEW_STREAM = 0, 1


@dataclass(frozen=True)
class ImageFolder:
    root: Path
    classes: list[str]
    samples: list[tuple[Path, int]]  # (image path, class index), sorted by class then path

    def targets(self) -> np.ndarray:
        return np.array([label for _, label in self.samples], dtype=np.int64)

    def subset(self, indices: np.ndarray) -> ImageFolder:
        return ImageFolder(self.root, self.classes, [self.samples[i] for i in sorted(indices)])


@dataclass(frozen=True)
class Augmentation:
    """Training-view randomness.  Horizontal flips suit photos, not text or digits (a flipped 2 is no digit)."""

    min_scale: float = 0.35  # crop area as a fraction of the image area
    max_scale: float = 1.0  # above 1 the crop extends past the image (zoom out, edges repeated)
    flip: bool = True

    def validate(self) -> None:
        if not 0 < self.min_scale <= self.max_scale:
            raise SdeployError(
                f"--crop-scale must be two numbers 0 < MIN <= MAX, got {self.min_scale} {self.max_scale}"
            )


# ---------------------------------------------------------------- reading


def read_image_folder(root: str | Path, classes: list[str] | None = None, what: str = "--data") -> ImageFolder:
    """Read a class-per-subfolder tree.

    ``classes`` fixes the label order (for a held-out folder, the training
    classes); its subfolders must be among them, and may be fewer.
    """
    root = Path(root)
    if not root.is_dir():
        raise SdeployError(f"{what} folder not found: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise SdeployError(f"{what} folder {root} has no class subfolders: put each class's images in {root}/<class name>/")
    names = [folder.name for folder in folders]
    if classes is None:
        classes = names
        if len(classes) < 2:
            raise SdeployError(f"{what} folder {root} has only one class ({classes[0]}); a classifier needs at least two")
    else:
        unknown = [name for name in names if name not in classes]
        if unknown:
            raise SdeployError(
                f"{what} folder {root} has class(es) the training data lacks: {', '.join(unknown[:5])} "
                f"(training classes: {', '.join(classes[:10])})"
            )
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for folder in folders:
        images = list_images(folder)
        if not images:
            suffixes = ", ".join(IMAGE_SUFFIXES[:3])
            raise SdeployError(f"class folder {folder} has no images ({suffixes}, ...); add some or remove the folder")
        samples += [(path, index[folder.name]) for path in images]
    return ImageFolder(root, list(classes), samples)


def split_heldout(folder: ImageFolder, fraction: float, seed: int) -> tuple[ImageFolder, ImageFolder]:
    """Seeded stratified split: ``round(fraction * n)`` images of every class held out, at least one kept for training."""
    if not 0 < fraction < 1:
        raise SdeployError(f"--heldout-fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    targets = folder.targets()
    heldout = []
    for label in range(len(folder.classes)):
        members = np.flatnonzero(targets == label)
        count = min(round(fraction * len(members)), len(members) - 1)
        heldout += list(rng.permutation(members)[:count])
    if not heldout:
        raise SdeployError(f"--heldout-fraction {fraction} holds out no image of {folder.root}; raise it or pass --heldout DIR")
    training = np.setdiff1d(np.arange(len(targets)), heldout)
    return folder.subset(training), folder.subset(np.array(heldout))


# ---------------------------------------------------------------- views


def eval_view(path: Path, contract: InputContract) -> np.ndarray:
    """3 x S x S float32: exactly what ``sdeploy verify --images`` feeds, so held-out accuracies agree."""
    return preprocess_8bit(path, contract)


def train_view(image: np.ndarray, contract: InputContract, augmentation: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """3 x S x S float32: a random resized crop of an HxWx3 uint8 image, maybe flipped, normalised."""
    height, width = image.shape[:2]
    top, left, box_h, box_w = random_box(height, width, augmentation, rng)
    size = contract.img_size
    rows = box_resample_weights(height, size, top, box_h)
    cols = box_resample_weights(width, size, left, box_w)
    pixels = np.einsum("ij,jkc,lk->ilc", rows, image.astype(np.float64), cols, optimize=True)
    if augmentation.flip and rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    return normalize(pixels, contract)


def random_box(height: int, width: int, augmentation: Augmentation, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """(top, left, box height, box width) in pixels: random area fraction and aspect ratio, random position."""
    area = height * width * rng.uniform(augmentation.min_scale, augmentation.max_scale)
    aspect = math.exp(rng.uniform(*np.log(CROP_ASPECT_RANGE)))
    box_w, box_h = math.sqrt(area * aspect), math.sqrt(area / aspect)
    # A box smaller than the image lies inside it; a larger one covers it, overhanging on random sides.
    top = rng.uniform(min(0.0, height - box_h), max(0.0, height - box_h))
    left = rng.uniform(min(0.0, width - box_w), max(0.0, width - box_w))
    return top, left, box_h, box_w


def box_resample_weights(in_size: int, out_size: int, start: float, length: float) -> np.ndarray:
    """(out_size, in_size) triangle-filter weights resampling ``[start, start + length)`` of an axis.

    The same kernel as ``preprocess.resample_weights`` (whose whole-axis case
    this reproduces), so training and evaluation pixels are filtered alike.
    Sample centres outside the axis are clamped to its ends: edge pixels repeat.
    """
    scale = length / out_size
    support = max(scale, 1.0)
    centers = np.clip(start + (np.arange(out_size) + 0.5) * scale, 0.0, in_size)
    taps = np.maximum(0.0, 1.0 - np.abs((np.arange(in_size)[None, :] + 0.5 - centers[:, None]) / support))
    return taps / taps.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- torch datasets


class TrainingSet(torch.utils.data.Dataset):
    """Indexed by (epoch, image index), so each view's randomness is fixed by the seed alone."""

    def __init__(self, folder: ImageFolder, contract: InputContract, augmentation: Augmentation, seed: int):
        self.folder, self.contract, self.augmentation, self.seed = folder, contract, augmentation, seed

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key
        path, label = self.folder.samples[index]
        rng = np.random.default_rng((self.seed, _VIEW_STREAM, epoch, index))
        return torch.from_numpy(train_view(load_image(path), self.contract, self.augmentation, rng)), label


class EvalSet(torch.utils.data.Dataset):
    def __init__(self, folder: ImageFolder, contract: InputContract):
        self.folder, self.contract = folder, contract

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.folder.samples[index]
        return torch.from_numpy(eval_view(path, self.contract)), label


def epoch_batches(count: int, batch_size: int, epoch: int, seed: int) -> list[list[tuple[int, int]]]:
    """A seeded shuffle of ``count`` images into batches of (epoch, index) keys for :class:`TrainingSet`.

    The incomplete last batch is dropped when there is more than one batch:
    a reshuffle every epoch still shows every image, and BatchNorm cannot
    train on a batch of one.
    """
    order = np.random.default_rng((seed, _ORDER_STREAM, epoch)).permutation(count)
    batches = [order[i : i + batch_size] for i in range(0, count, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return [[(epoch, int(index)) for index in batch] for batch in batches]
