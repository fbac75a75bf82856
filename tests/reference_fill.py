"""Deterministic weights for any state_dict layout, independent of shufflenet_deploy.

Used both by ``fixtures/make_reference_fixtures.py`` (run once against the
upstream code) and by the tests (against our code), so equal outputs prove the
two networks compute the same function.
"""

from __future__ import annotations

import numpy as np
import torch


def fill(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    values = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if key.endswith("num_batches_tracked"):
            values[key] = torch.tensor(0)
            continue
        if key.endswith("running_var"):
            array = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("running_mean") or key.endswith("bias"):
            array = rng.normal(0.0, 0.1, shape)
        elif len(shape) >= 2:
            array = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        else:
            array = rng.uniform(0.5, 1.5, shape)
        values[key] = torch.from_numpy(array.astype(np.float32))
    return values


def reference_input(seed: int = 0, batch: int = 2, size: int = 224) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(batch, 3, size, size)).astype(np.float32))
