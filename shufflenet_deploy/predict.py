"""Eager PyTorch predictions: the reference every exported artifact is compared with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    probability: float


@torch.no_grad()
def predict_logits(model: nn.Module, batch: np.ndarray) -> np.ndarray:
    """float32 NCHW in, float32 logits out, in eval mode."""
    model.eval()
    return model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted.astype(np.float64))
    return exp / exp.sum(axis=-1, keepdims=True)


def top_k(logits: np.ndarray, labels: list[str], k: int = 5) -> list[Prediction]:
    """Best ``k`` classes of one logit vector; ties keep the lower index first (stable sort)."""
    probabilities = softmax(logits)
    order = np.argsort(-logits, kind="stable")[:k]
    return [Prediction(int(i), labels[i], float(probabilities[i])) for i in order]
