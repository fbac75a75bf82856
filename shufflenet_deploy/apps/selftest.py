"""The demo apps' self-test: the comparison every app implements (docs/app-protocol.md), in Python.

This is the reference the Kotlin, Swift and JavaScript versions are tested
against (golden vectors), and what ``sdeploy verify --device-report`` applies
to a report's outputs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from .. import parity
from ..manifest import manifest_contract
from ..modelio import ModelIO
from ..predict import predict_logits, softmax
from ..preprocess import load_image, normalize, preprocess, preprocess_8bit, random_images, resized_size
from ..tolerances import fp16_floor, limits
from ..reference import rebuild_reference

SELFTEST_SCHEMA = "sdeploy-selftest/1"
REPORT_SCHEMA = "sdeploy-device-report/1"


def compare(outputs, expected, tolerance: dict) -> dict:
    """Metrics and verdict for an app's ``outputs`` against ``expected``, one row per image."""
    actual, reference = np.asarray(outputs, np.float64), np.asarray(expected, np.float64)
    if actual.shape != reference.shape or reference.ndim != 2 or not len(reference):
        raise ValueError(f"outputs {actual.shape} and expected {reference.shape} must be equal (images, classes) arrays")
    verdict = parity.compare(actual, reference, tolerance["atol"], tolerance["min_cosine"], tolerance["decisive_margin"])
    return {
        "verdict": "PASS" if verdict.passed else "FAIL",
        "max_abs_error": verdict.max_abs_error,
        "max_rel_error": verdict.max_rel_error,
        "min_cosine": verdict.min_cosine,
        "top1_agreement": verdict.top1_agreement,
        "decisive_top1_agreement": verdict.decisive_top1_agreement,
    }


def golden_compare_cases() -> list[dict]:
    """Cases that pin the apps' comparison to :func:`compare`: passes, and one failure per rule."""
    rng = np.random.default_rng(11)
    expected = rng.normal(0, 4, (3, 10))
    tolerance = {"atol": 0.05, "min_cosine": 0.999, "decisive_margin": 0.1}
    near_tie = expected.copy()
    near_tie[0, :2] = [9.0, 8.97]  # a reference top-2 gap below the margin: its top-1 may flip
    flipped_tie = near_tie.copy()
    flipped_tie[0, :2] = [8.98, 8.99]
    flipped = expected.copy()
    first, second = np.argsort(-expected[1])[:2]
    flipped[1, second] = expected[1, first] + 0.01  # a clear winner loses its place
    mixed = expected.copy()
    mixed[2] = expected[2][::-1]  # same values, other classes: only the cosine rule can see it
    loose = {"atol": 100.0, "min_cosine": 0.5, "decisive_margin": 0.1}
    cases = {
        "identical": (expected, expected, tolerance),
        "small_noise": (expected + rng.uniform(-0.04, 0.04, expected.shape), expected, tolerance),
        "over_atol": (expected + np.where(np.arange(10) == 3, 0.06, 0.0), expected, tolerance),
        "near_tie_flip": (flipped_tie, near_tie, tolerance),
        "decisive_flip": (flipped, expected, loose),
        "low_cosine": (mixed, expected, {"atol": 100.0, "min_cosine": 0.999, "decisive_margin": 1e9}),
    }
    out = []
    for name, (outputs, reference, tol) in cases.items():
        out.append({"name": name, "tolerance": tol, "outputs": outputs.tolist(), "expected": reference.tolist(),
                    "result": compare(outputs, reference, tol)})  # fmt: skip
    return out


# ---------------------------------------------------------------- the bundle's selftest.json

SELFTEST_FILE = "selftest.json"
SAMPLE_PHOTO = "flower.jpg"
WARMUP_RUNS, TIMED_RUNS = 3, 10
#: Input kinds whose app feeds 8-bit pixels (the rest get the unrounded resize, as ``preprocess`` computes it).
EIGHT_BIT_INPUTS = ("pixels", "image")


def selftest_images() -> list[tuple[str, str, np.ndarray]]:
    """(name, kind, HxWx3 uint8 RGB): the bundled photo and synthetic patterns of awkward sizes, all deterministic."""
    with resources.as_file(resources.files("shufflenet_deploy").joinpath("data", SAMPLE_PHOTO)) as path:
        photo = load_image(path)
    field = random_images(1, 333, seed=7)[0][:333, :251]  # portrait, odd sizes
    ramp = np.linspace(0, 255, 419)
    gradient = np.stack(np.broadcast_arrays(ramp[None, :], ramp[::-1, None][:157], np.full((157, 419), 96.0)), axis=2)
    checks = ((np.indices((180, 240)).sum(axis=0) // 12) % 2 * 200 + 30).astype(np.uint8)
    return [
        ("photo-flower", "natural", photo),
        ("photo-flower-portrait", "natural", np.ascontiguousarray(photo.transpose(1, 0, 2)[::-1])),
        ("noise-field", "synthetic", field),
        ("gradient-wide", "synthetic", np.rint(gradient).astype(np.uint8)),
        ("checkerboard", "synthetic", np.repeat(checks[..., None], 3, axis=2)),
    ]


def pixels_sha256(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).hexdigest()


def network_inputs(images: list[np.ndarray], contract, input_kind: str) -> np.ndarray:
    """The tensors the app's preprocessing gives the network for each image."""
    view = preprocess_8bit if input_kind in EIGHT_BIT_INPUTS else preprocess
    return np.stack([view(image, contract) for image in images])


def app_tolerance(record: dict, model, inputs: np.ndarray, expected: np.ndarray, probabilities: bool,
                  resampling: tuple[float, float] = (0.0, 0.0)) -> dict:  # fmt: skip
    """What verify would allow this artifact on these inputs (fp16: from their measured fp16 floor), widened by
    ``resampling`` (max abs, cosine gap) for apps whose platform scaler resizes the image."""
    floor = fp16_floor(model, inputs, expected, probabilities) if record["precision"] == "fp16" else None
    checks = limits(record, expected, floor)
    atol = checks.atol + RESAMPLING_MULTIPLE * resampling[0]
    min_cosine = min(checks.min_cosine, 1.0 - RESAMPLING_MULTIPLE * resampling[1])
    rule = checks.rule + (f"; plus {RESAMPLING_MULTIPLE:g}x the spread of other resamplers ({resampling[0]:.3g} abs), "
                          "as the app's platform scaler resizes the image" if resampling[0] else "")  # fmt: skip
    return {"atol": atol, "min_cosine": min_cosine, "decisive_margin": 2 * atol, "rule": rule}


#: Input kinds resized by the platform's own scaler (Core ML's image input through Vision), not the contract's code.
PLATFORM_RESIZED = ("image",)
#: The resampler spread is measured with these Pillow filters; the app's may be any of their kind.
OTHER_RESAMPLERS = ("BILINEAR", "BICUBIC", "LANCZOS")
RESAMPLING_MULTIPLE = 2.0


def resampling_spread(model, images: list[np.ndarray], contract, expected: np.ndarray,
                      probabilities: bool) -> tuple[float, float]:  # fmt: skip
    """How far other common resamplers move the outputs from the contract's own (max abs, cosine gap)."""
    worst_abs, worst_gap = 0.0, 0.0
    for name in OTHER_RESAMPLERS:
        tensors = np.stack([normalize(_pillow_resize_crop(image, contract, name), contract) for image in images])
        outputs = predict_logits(model, tensors)
        outputs = softmax(outputs) if probabilities else outputs
        verdict = parity.compare(outputs, expected, np.inf, -1.0, np.inf)
        worst_abs, worst_gap = max(worst_abs, verdict.max_abs_error), max(worst_gap, 1.0 - verdict.min_cosine)
    return worst_abs, worst_gap


def _pillow_resize_crop(image: np.ndarray, contract, filter_name: str) -> np.ndarray:
    width, height = image.shape[1], image.shape[0]
    new_w, new_h = resized_size(width, height, contract.resize_size)
    resized = Image.fromarray(image).resize((new_w, new_h), getattr(Image.Resampling, filter_name))
    top, left = (new_h - contract.img_size) // 2, (new_w - contract.img_size) // 2
    return np.asarray(resized, dtype=np.float64)[top : top + contract.img_size, left : left + contract.img_size]


def app_expected(model, images: list[np.ndarray], contract, record: dict) -> tuple[np.ndarray, dict]:
    """Eager PyTorch's outputs for full-size ``images`` through the app's input path, and the tolerance to apply."""
    probabilities = ModelIO.from_record(record).probabilities
    input_kind = record["inputs"][0].get("kind", "tensor")
    inputs = network_inputs(images, contract, input_kind)
    logits = predict_logits(model, inputs)
    expected = softmax(logits) if probabilities else logits
    resampling = (resampling_spread(model, images, contract, expected, probabilities)
                  if input_kind in PLATFORM_RESIZED else (0.0, 0.0))  # fmt: skip
    return expected, app_tolerance(record, model, inputs, expected, probabilities, resampling)


def build_selftest(export_dir: Path, manifest: dict, key: str, record: dict, model_file: str) -> dict:
    """The ``selftest.json`` document for one bundled artifact (docs/app-protocol.md)."""
    model = rebuild_reference(manifest, export_dir, progress=False)
    images = selftest_images()
    expected, tolerance = app_expected(model, [pixels for _, _, pixels in images], manifest_contract(manifest), record)
    entries = []
    for (name, source, pixels), values in zip(images, expected, strict=True):
        png = io.BytesIO()
        Image.fromarray(pixels).save(png, format="PNG")
        entries.append({
            "name": name, "kind": source, "width": int(pixels.shape[1]), "height": int(pixels.shape[0]),
            "png_base64": base64.b64encode(png.getvalue()).decode(), "png_sha256": _sha256(png.getvalue()),
            "pixels_sha256": pixels_sha256(pixels), "expected": [float(v) for v in values],
            "expected_top1": int(np.argmax(values)),
        })  # fmt: skip
    return {
        "schema": SELFTEST_SCHEMA, "arch": manifest["arch"], "artifact": key, "format": record["format"],
        "precision": record["precision"], "model_file": model_file, "sha256": record["sha256"],
        "output_kind": ModelIO.from_record(record).output_kind, "tolerance": tolerance,
        "runs": {"warmup": WARMUP_RUNS, "timed": TIMED_RUNS}, "images": entries,
    }  # fmt: skip


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_selftest(path: Path, export_dir: Path, manifest: dict, key: str, record: dict, binding) -> None:
    document = build_selftest(export_dir, manifest, key, record, binding.model_file)
    path.write_text(json.dumps(document) + "\n", encoding="utf-8")
