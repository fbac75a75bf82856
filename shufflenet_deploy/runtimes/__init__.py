"""One runner per runtime, behind :class:`base.Runner`.

Runner modules are imported lazily: importing onnxruntime, ncnn or
coremltools is slow and prints banners, and a missing one must only affect
its own runtime.
"""

from __future__ import annotations

import importlib

from ..errors import SdeployError, unknown_name_error
from .base import Runner, RuntimeUnavailable

#: runtime name -> (module, class); the formats each runs are declared on the class.
RUNNERS = {
    "onnxruntime": ("onnxruntime_runner", "OnnxRuntimeRunner"),
    "torchscript": ("torchscript_runner", "LiteInterpreterRunner"),
    "coreml": ("coreml_runner", "CoreMLRunner"),
    "ncnn": ("ncnn_runner", "NcnnRunner"),
}
#: Manifest artifact format -> the runtime that executes it.
FORMAT_RUNTIME = {"onnx": "onnxruntime", "torchscript-lite": "torchscript", "mlpackage": "coreml", "ncnn": "ncnn"}


def check_runtime_name(name: str) -> None:
    if name not in RUNNERS:
        raise unknown_name_error("runtime", name, RUNNERS, f"choose from {', '.join(RUNNERS)}")


def runner_class(name: str) -> type[Runner]:
    check_runtime_name(name)
    module, cls = RUNNERS[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def runtime_for(record: dict) -> str:
    try:
        return FORMAT_RUNTIME[record["format"]]
    except KeyError:
        raise SdeployError(f"no runtime runs artifacts of format '{record.get('format')}'") from None


__all__ = ["FORMAT_RUNTIME", "RUNNERS", "Runner", "RuntimeUnavailable", "check_runtime_name", "runner_class", "runtime_for"]
