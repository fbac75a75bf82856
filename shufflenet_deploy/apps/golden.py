"""Golden vectors that pin the demo apps' preprocessing, top-k and label loading to Python's.

``write_golden(dir)`` writes ``golden.json`` plus PNG copies of its images.
Each case carries the raw RGBA pixels (so Kotlin and JavaScript tests check
the arithmetic, not their platform's image decoder) and the exact float32
tensor that :func:`preprocess.normalize` produces for each contract.
Binary arrays are base64: pixels as bytes, tensors as little-endian float32,
logits and probabilities as little-endian float64.
``selftest_compare`` pins the apps' self-test comparison (docs/app-protocol.md)
to :func:`.selftest.compare`: plain JSON numbers, outputs and verdicts.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..nets.shufflenet_v1 import OFFICIAL_CONTRACT
from ..labels import parse_labels
from ..predict import softmax, top_k
from .selftest import golden_compare_cases
from ..preprocess import InputContract, normalize, random_images, resize_and_crop

GOLDEN_SCHEMA = "sdeploy-golden/1"

#: Contracts the apps must handle: ImageNet RGB at both crop ratios, and the official V1 BGR 0..255 one.
CONTRACTS = {
    "imagenet_rgb": InputContract().at_size(40),
    "imagenet_rgb_232": InputContract(resize_size=232).at_size(48),
    "official_v1_bgr": OFFICIAL_CONTRACT.at_size(36),
}
#: name -> (width, height, has_alpha): aspect ratios both ways, an upscale, an exact fit, an alpha channel.
IMAGES = {
    "landscape": (97, 61, False),
    "portrait": (50, 83, False),
    "small_upscaled": (20, 28, False),
    "exact_fit": (46, 46, False),
    "alpha": (64, 57, True),
}
LABEL_TEXTS = ["cat\ndog\nbird\n", "cat\r\ndog\r\n\r\n\r\n", "  spaced label \nlast"]


def golden_image(width: int, height: int, alpha: bool, seed: int) -> np.ndarray:
    """An HxWx4 uint8 RGBA test image (alpha 255 unless ``alpha``)."""
    square = random_images(1, max(width, height), seed=seed)[0][:height, :width]
    opacity = np.full((height, width, 1), 255, np.uint8)
    if alpha:
        opacity = np.random.default_rng(seed).integers(0, 256, (height, width, 1), dtype=np.uint8)
    return np.concatenate([square, opacity], axis=2)


def _b64(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode()


def _image_cases(out_dir: Path, contracts: dict[str, InputContract]) -> list[dict]:
    cases = []
    for seed, (name, (width, height, alpha)) in enumerate(IMAGES.items()):
        rgba = golden_image(width, height, alpha, seed)
        Image.fromarray(rgba if alpha else rgba[..., :3]).save(out_dir / f"{name}.png")
        tensors = {
            key: {"tensor_f32le_b64": _b64(normalize(resize_and_crop(rgba[..., :3], contract), contract), "<f4")}
            for key, contract in contracts.items()
        }
        cases.append({"name": name, "png": f"{name}.png", "width": width, "height": height,
                      "rgba_b64": _b64(rgba, "u1"), "tensors": tensors})  # fmt: skip
    return cases


def _topk_cases() -> list[dict]:
    rng = np.random.default_rng(7)
    cases = []
    for size, with_ties in ((10, False), (1000, False), (12, True)):
        logits = rng.normal(0, 4, size)
        if with_ties:
            logits[[2, 5, 9]] = logits.max() + 1  # equal best scores: lower index first
        labels = [f"class_{i}" for i in range(size)]
        best = top_k(logits, labels, 5)
        cases.append({
            "logits_f64le_b64": _b64(logits, "<f8"),
            "k": 5,
            "indices": [p.index for p in best],
            "probabilities": [p.probability for p in best],
            "softmax_f64le_b64": _b64(softmax(logits), "<f8"),
        })  # fmt: skip
    return cases


def _label_cases() -> list[dict]:
    return [{"text": text, "labels": parse_labels(text)} for text in LABEL_TEXTS]


def write_golden(out_dir: str | Path, contracts: dict[str, InputContract] | None = None) -> Path:
    """Write golden.json and the PNGs; ``contracts`` (default :data:`CONTRACTS`) name the tensors per image."""
    contracts = CONTRACTS if contracts is None else contracts
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "schema": GOLDEN_SCHEMA,
        "contracts": {key: contract.to_dict() for key, contract in contracts.items()},
        "images": _image_cases(out_dir, contracts),
        "topk": _topk_cases(),
        "labels": _label_cases(),
        "selftest_compare": golden_compare_cases(),
    }
    path = out_dir / "golden.json"
    path.write_text(json.dumps(data, indent=1))
    return path
