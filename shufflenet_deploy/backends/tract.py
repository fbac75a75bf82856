"""tract (Sonos' Rust inference engine, PyPI ``tract``): one more independent runtime for ONNX artifacts.

It parses ONNX strictly and optimises the graph its own way, so a form only
onnxruntime accepts (fp16 Gemm with a bias, say) shows up here.
"""

from __future__ import annotations

import numpy as np

from .base import Runner, crosscheck_backend
from .onnx import FORMAT as ONNX_FORMAT


class TractRunner(Runner):
    name = "tract"
    requires = ("tract",)
    extra = "crosscheck"

    def load(self) -> None:
        import tract

        self.runnable = tract.onnx().load(str(self.path)).into_model().into_runnable()
        self.version = tract.version()

    def run_fixed(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.runnable.run([batch])[0].to_numpy(), dtype=np.float32)

    @property
    def description(self) -> str:
        return f"tract {self.version} (single-threaded)"


BACKEND = crosscheck_backend(TractRunner, ONNX_FORMAT, "tract (Sonos): checks ONNX artifacts in one more runtime",
                             "tract", "tab:pink", 18)
