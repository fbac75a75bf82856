"""The demo apps' self-test: the comparison every app implements (docs/app-protocol.md), in Python.

This is the reference the Kotlin, Swift and JavaScript versions are tested
against (golden vectors), and what ``sdeploy verify --device-report`` applies
to a report's outputs.
"""

from __future__ import annotations

import numpy as np

SELFTEST_SCHEMA = "sdeploy-selftest/1"
REPORT_SCHEMA = "sdeploy-device-report/1"


def compare(outputs, expected, tolerance: dict) -> dict:
    """Metrics and verdict for an app's ``outputs`` against ``expected``, one row per image."""
    actual = np.asarray(outputs, dtype=np.float64)
    reference = np.asarray(expected, dtype=np.float64)
    if actual.shape != reference.shape or reference.ndim != 2 or not len(reference):
        raise ValueError(f"outputs {actual.shape} and expected {reference.shape} must be equal (images, classes) arrays")
    max_abs = float(np.abs(actual - reference).max())
    spread = float(reference.max() - reference.min()) or 1.0
    norms = np.linalg.norm(actual, axis=1) * np.linalg.norm(reference, axis=1) + 1e-30
    cosine = float(((actual * reference).sum(axis=1) / norms).min())
    agree = actual.argmax(axis=1) == reference.argmax(axis=1)
    decisive = _top2_gap(reference) > tolerance["decisive_margin"]
    decisive_agreement = float(agree[decisive].mean()) if decisive.any() else 1.0
    passed = max_abs <= tolerance["atol"] and cosine >= tolerance["min_cosine"] and decisive_agreement == 1.0
    return {
        "verdict": "PASS" if passed else "FAIL",
        "max_abs_error": max_abs,
        "max_rel_error": max_abs / spread,
        "min_cosine": cosine,
        "top1_agreement": float(agree.mean()),
        "decisive_top1_agreement": decisive_agreement,
    }


def _top2_gap(values: np.ndarray) -> np.ndarray:
    if values.shape[1] < 2:
        return np.full(len(values), np.inf)
    top2 = np.sort(values, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


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
