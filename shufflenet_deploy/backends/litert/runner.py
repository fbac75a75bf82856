"""The LiteRT runtime: ai-edge-litert's Interpreter on the CPU, with the XNNPACK delegate it applies by default.

ai-edge-litert 2.x is the runtime of the Android ``com.google.ai.edge.litert``
AAR of the same version; its default op resolver hands every op XNNPACK
supports to XNNPACK, as the app's CPU path does.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import numpy as np

from ... import sysutil
from ..base import Runner

DELEGATE_OP = "DELEGATE"  # what a delegated partition shows as in the interpreter's op list
#: Printed once per process when XNNPACK is applied; the runner's description says so already.
XNNPACK_BANNER = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


def native_stderr_to_python() -> contextlib.AbstractContextManager[None]:
    """Native logs into Python's ``sys.stderr``, without the XNNPACK banner (the runner's description says so)."""
    return sysutil.native_stderr_to_python(drop=(XNNPACK_BANNER,))


def make_interpreter(model: bytes | Path, threads: int | None = None, xnnpack: bool = True):
    """An allocated Interpreter for a .tflite file or its bytes; without ``xnnpack``, only the reference kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    source = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) else {"model_path": str(model)}
    with native_stderr_to_python():
        interpreter = Interpreter(**source, num_threads=threads, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    return interpreter


def executed_ops(interpreter) -> Counter:
    """Ops that run, by name, after delegation: a delegated partition counts as one DELEGATE op.

    The interpreter lists the nodes a delegate replaced as well, so the ops
    that run are found by walking back from the outputs: each needed tensor
    comes from the delegate that outputs it, else from its own op.
    """
    # _get_ops_details is the interpreter's only op listing; it is private, so a change degrades to nothing.
    try:
        ops = interpreter._get_ops_details()
        outputs = [detail["index"] for detail in interpreter.get_output_details()]
    except (AttributeError, KeyError):
        return Counter()
    producer = {}
    for op in sorted(ops, key=lambda op: op["op_name"] == DELEGATE_OP):  # delegates last: they win
        producer.update({int(tensor): op for tensor in op["outputs"]})
    ran, pending = {}, list(outputs)
    while pending:
        op = producer.get(pending.pop())
        if op is not None and op["index"] not in ran:
            ran[op["index"]] = op["op_name"]
            pending.extend(int(tensor) for tensor in op["inputs"] if tensor >= 0)
    return Counter(ran.values())


def delegation(model: bytes | Path) -> dict:
    """How XNNPACK takes the model: its partitions, and the ops left to the reference kernels."""
    counts = executed_ops(make_interpreter(model, threads=1))
    partitions = counts.pop(DELEGATE_OP, 0)
    return {"xnnpack_partitions": partitions, "ops_outside_xnnpack": dict(sorted(counts.items())),
            "fully_delegated": partitions == 1 and not counts}  # fmt: skip


class LiteRTRunner(Runner):
    name = "litert"
    requires = ("ai_edge_litert.interpreter",)
    extra = "litert"

    def load(self) -> None:
        import ai_edge_litert

        self.interpreter = make_interpreter(self.path, self.threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.partitions = executed_ops(self.interpreter)[DELEGATE_OP]
        self.version = ai_edge_litert.__version__

    def run_fixed(self, batch: np.ndarray) -> np.ndarray:
        # Runner.run has already converted the batch to the artifact's dtype and layout.
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()

    @property
    def description(self) -> str:
        plural = "s" if self.partitions != 1 else ""
        xnnpack = f"XNNPACK ({self.partitions} partition{plural})" if self.partitions else "no XNNPACK"
        return f"ai-edge-litert {self.version} Interpreter, CPU, {xnnpack}, {self.threads or 'default'} threads"
