"""What every int8 export shares: the calibration images.

Static int8 quantization fixes each activation's range ahead of time from
calibration images.  Those images become tensors through the export's own
input contract (:func:`shufflenet_deploy.preprocess.preprocess`), exactly as
apps and ``sdeploy verify`` feed the model, so the recorded ranges are the
ones the deployed model meets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SdeployError
from ..preprocess import IMAGE_SUFFIXES, InputContract, list_images, preprocess


@dataclass(frozen=True)
class Calibration:
    """Preprocessed calibration inputs and where they came from (recorded in the manifest)."""

    tensors: np.ndarray  # N x 3 x S x S float32, normalised by the export's contract
    folder: str
    images_found: int

    @property
    def count(self) -> int:
        return len(self.tensors)

    def describe(self) -> dict:
        return {"folder": self.folder, "images_used": self.count, "images_found": self.images_found,
                "preprocessing": "sdeploy input contract (preprocess.preprocess)"}  # fmt: skip


def calibration_images(folder: str | Path) -> list[Path]:
    """Every image under ``folder`` (any tree); a missing folder or one without images is one clear error."""
    if not Path(folder).is_dir():
        raise SdeployError(f"--calib folder not found: {folder}")
    images = list_images(folder)
    if not images:
        raise SdeployError(
            f"no images found in --calib {folder} (looked for {', '.join(IMAGE_SUFFIXES)} in every subfolder)"
        )
    return images


def evenly_spaced(items: list, limit: int) -> list:
    """At most ``limit`` items spread over the whole list: a sorted class-per-folder tree keeps every class."""
    if len(items) <= limit:
        return list(items)
    return [items[(index * len(items)) // limit] for index in range(limit)]


def load_calibration(folder: str | Path, contract: InputContract, limit: int) -> Calibration:
    paths = calibration_images(folder)
    chosen = evenly_spaced(paths, limit)
    tensors = np.stack([preprocess(path, contract) for path in chosen]).astype(np.float32, copy=False)
    return Calibration(tensors, str(folder), len(paths))


def fixed_batches(tensors: np.ndarray, batch: int | None) -> list[np.ndarray]:
    """Fixed-batch models take exactly ``batch`` inputs: the last chunk repeats its final image
    (MinMax ranges ignore repeats); dynamic-batch models (``None``) get one image per call."""
    size = batch or 1
    chunks = []
    for start in range(0, len(tensors), size):
        chunk = tensors[start : start + size]
        if len(chunk) < size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)])
        chunks.append(np.ascontiguousarray(chunk))
    return chunks
