"""How two sets of outputs are compared: the one rule that ``verify``, the apps' self-test and ``--locate`` apply.

An artifact passes when its largest absolute error is within tolerance, its
lowest per-input cosine similarity is above the floor, and its top-1 agrees
on every *decisive* input: one whose reference top-2 gap is larger than the
decisive margin (near-ties may legitimately flip).  Outputs that are not
finite fail with that reason; no NumPy warning escapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOP_K = 5


@dataclass(frozen=True)
class Verdict:
    passed: bool
    max_abs_error: float
    max_rel_error: float
    min_cosine: float
    top1_agreement: float
    decisive_top1_agreement: float
    topk_overlap: float
    logit_range: float
    reason: str | None  # why it failed, in words


def compare(outputs, reference, atol: float, min_cosine: float, decisive_margin: float) -> Verdict:
    """Judge ``outputs`` against ``reference``, both (inputs, classes)."""
    actual = np.asarray(outputs, dtype=np.float64)
    expected = np.asarray(reference, dtype=np.float64)
    spread = float(expected.max() - expected.min()) or 1.0
    finite = np.isfinite(actual)
    if not finite.all():
        bad = int((~finite).sum())
        reason = f"the outputs contain NaN or Inf ({bad} of {actual.size} values)"
        return Verdict(False, float("inf"), float("inf"), -1.0, 0.0, 0.0, 0.0, spread, reason)
    max_abs = float(np.abs(actual - expected).max())
    norms = np.linalg.norm(actual, axis=1) * np.linalg.norm(expected, axis=1) + 1e-30
    cosine = float(((actual * expected).sum(axis=1) / norms).min())
    agree = actual.argmax(axis=1) == expected.argmax(axis=1)
    decisive = top2_gap(expected) > decisive_margin
    decisive_agreement = float(agree[decisive].mean()) if decisive.any() else 1.0
    problems = []
    if max_abs > atol:
        problems.append(f"max abs error {max_abs:.3g} > tolerance {atol:.3g}")
    if cosine < min_cosine:
        problems.append(f"cosine {cosine:.6f} < {min_cosine}")
    if decisive_agreement < 1.0:
        problems.append(f"top-1 differs on {int((decisive & ~agree).sum())} input(s) whose top-2 gap is over "
                        f"{decisive_margin:.3g}")  # fmt: skip
    return Verdict(not problems, max_abs, max_abs / spread, cosine, float(agree.mean()), decisive_agreement,
                   topk_overlap(actual, expected), spread, "; ".join(problems) or None)  # fmt: skip


def top2_gap(values: np.ndarray) -> np.ndarray:
    """Per row: the largest value minus the second largest (infinite with a single class)."""
    if values.shape[1] < 2:
        return np.full(len(values), np.inf)
    top2 = np.sort(values, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def topk_overlap(actual: np.ndarray, expected: np.ndarray, k: int = TOP_K) -> float:
    """Mean share of the reference's top-k found in the outputs' top-k (k capped at the class count)."""
    k = min(k, expected.shape[1])
    top_actual = np.argsort(-actual, axis=1, kind="stable")[:, :k]
    top_expected = np.argsort(-expected, axis=1, kind="stable")[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top_actual, top_expected, strict=True)]))
