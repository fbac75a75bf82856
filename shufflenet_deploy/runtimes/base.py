"""The interface every runtime implements: load an artifact, run a float32 NCHW batch, return logits.

Callers always pass the *normalised* network input (what ``preprocess``
produces).  A runner whose artifact takes something else (Core ML's image
input takes pixels) converts with the manifest's input contract, so every
runtime is compared on identical inputs.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import MissingDependencyError, require_modules
from ..preprocess import InputContract


class RuntimeUnavailable(MissingDependencyError):
    """The runtime's package is not installed: reported as 'not available', never as a pass."""


class Runner(abc.ABC):
    #: Name used on the command line (``--runtime``) and in reports.
    name: ClassVar[str]
    #: Manifest artifact formats this runner executes.
    formats: ClassVar[tuple[str, ...]]
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str] = ""

    def __init__(self, export_dir: Path, record: dict, contract: InputContract, threads: int | None = None):
        self.export_dir = Path(export_dir)
        self.record = record
        self.contract = contract
        self.threads = threads
        self.path = self.export_dir / record["path"]
        self.load()

    @classmethod
    def check_available(cls) -> None:
        require_modules(cls.requires, cls.extra, f"the {cls.name} runtime", RuntimeUnavailable)

    @abc.abstractmethod
    def load(self) -> None:
        """Open the artifact at ``self.path``."""

    @abc.abstractmethod
    def run_fixed(self, batch: np.ndarray) -> np.ndarray:
        """Run exactly ``self.batch_size`` inputs (or any number if dynamic); return (N, classes) float32."""

    @property
    def description(self) -> str:
        """What actually ran, e.g. 'onnxruntime 1.32 CPUExecutionProvider, 2 threads'."""
        return self.name

    @property
    def batch_size(self) -> int | None:
        """The artifact's fixed batch size, or None when it accepts any batch."""
        dim = self.record["inputs"][0]["shape"][0]
        return None if isinstance(dim, str) else int(dim)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits for any number of inputs, chunked (and padded) to the artifact's fixed batch size."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        size = self.batch_size
        if size is None or len(batch) == size:
            return np.asarray(self.run_fixed(batch), dtype=np.float32)
        outputs = []
        for start in range(0, len(batch), size):
            chunk = batch[start : start + size]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)]) if len(chunk) < size else chunk
            outputs.append(np.asarray(self.run_fixed(padded), dtype=np.float32)[: len(chunk)])
        return np.concatenate(outputs)
