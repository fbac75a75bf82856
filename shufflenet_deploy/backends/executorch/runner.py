"""The ExecuTorch runtime (``executorch.runtime``, the C++ runtime's Python binding) with the XNNPACK backend.

Threads: XNNPACK runs on ExecuTorch's one process-wide thread pool, resized
by an experimental binding that replaces the pool.  A method keeps the pool
it was loaded with, so executing it after a resize uses a freed pool (glibc
heap corruption, seen with executorch 1.5.1).  Hence :func:`pool_generation`:
every resize starts a new generation, and a runner reloads its method when
the pool changed since it loaded, so no method ever runs on a pool other
than the one it was loaded with, even when runners with different thread
counts take turns (``sdeploy bench --threads 1,all`` keeps several alive).
"""

from __future__ import annotations

import json
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import torch

from ...sysutil import native_stderr_captured
from ..base import Runner

METADATA_METHOD = "sdeploy_metadata"
_pool = {"generation": 0}


def pool_generation(threads: int | None) -> tuple[int, int]:
    """Resize the thread pool to ``threads`` (None: keep it); its generation and size (module docstring)."""
    from executorch.extension.pybindings import portable_lib

    # The first call creates the pool, which logs five lines of cpuinfo probing, and every resize one more,
    # all informational: dropped. Loading and running keep their error messages.
    with native_stderr_captured([]):
        if threads and portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)
            _pool["generation"] += 1
        return _pool["generation"], portable_lib._threadpool_get_thread_count()


def load_program(pte: Path | bytes):
    """The loaded program; keep it referenced while any of its methods is in use."""
    from executorch.runtime import Runtime

    return Runtime.get().load_program(pte if isinstance(pte, bytes) else Path(pte))


def read_metadata(pte: Path | bytes) -> dict[str, str]:
    """The sdeploy metadata a .pte carries (its ``sdeploy_metadata`` method's JSON), or {} for none."""
    program = load_program(pte)
    if METADATA_METHOD not in program.method_names:
        return {}
    (text,) = program.load_method(METADATA_METHOD).execute([])
    return json.loads(text)


class ExecuTorchRunner(Runner):
    name = "executorch"
    requires = ("executorch.runtime",)
    extra = "executorch"

    def load(self) -> None:
        self.version = importlib_metadata.version("executorch")
        details = self.record["details"]
        self.max_batch = details.get("max_batch")
        self.partitions = details.get("xnnpack_partitions")
        self.outside = details.get("non_delegated_nodes")
        self.generation = None
        self._load_method()

    def _load_method(self) -> None:
        """(Re)load ``forward`` on the current pool: resizing it first, never after (module docstring)."""
        generation, self.pool_threads = pool_generation(self.threads)
        if generation == self.generation:
            return
        self.method = self.program = None  # a stale method is dropped before anything else loads
        self.program = load_program(self.path)
        self.method = self.program.load_method("forward")
        self.generation = generation

    def run_fixed(self, batch: np.ndarray) -> np.ndarray:
        self._load_method()
        # A dynamic-batch program takes at most the batch its memory was planned for.
        step = self.max_batch or len(batch)
        # clone(): an output tensor is the method's own planned memory, which the next call overwrites.
        outputs = [self.method.execute([torch.from_numpy(batch[start : start + step])])[0].clone()
                   for start in range(0, len(batch), step)]  # fmt: skip
        return torch.cat(outputs).float().numpy()

    @property
    def description(self) -> str:
        kernels = f"XNNPACK ({self.partitions} partition{'s' if self.partitions != 1 else ''})" if self.partitions else "no XNNPACK"
        if self.outside:
            kernels += f" + portable kernels ({self.outside} node{'s' if self.outside != 1 else ''})"
        plural = "s" if self.pool_threads != 1 else ""
        return f"executorch {self.version} runtime, CPU, {kernels}, {self.pool_threads} thread{plural}"
