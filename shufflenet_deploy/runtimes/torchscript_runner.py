"""PyTorch's lite interpreter (``torch.jit.mobile``), the runtime of pytorch_android_lite."""

from __future__ import annotations

import numpy as np
import torch

from .base import Runner


class LiteInterpreterRunner(Runner):
    name = "torchscript"
    formats = ("torchscript-lite",)
    requires = ("torch.jit.mobile",)

    def load(self) -> None:
        from torch.jit.mobile import _load_for_lite_interpreter

        self.module = _load_for_lite_interpreter(str(self.path))

    def run_fixed(self, batch: np.ndarray) -> np.ndarray:
        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                return self.module(torch.from_numpy(batch)).numpy()
        finally:
            torch.set_num_threads(previous)

    @property
    def description(self) -> str:
        return f"torch {torch.__version__} lite interpreter, {self.threads or torch.get_num_threads()} threads"
