"""Core ML: an ML Program (.mlpackage) converted by coremltools; native prediction on macOS, sdeploy's interpreter elsewhere.

``target.py`` converts, ``runner.py`` runs, ``mil/`` is the NumPy ML Program
interpreter that lets Linux CI check Core ML artifacts.
"""

from __future__ import annotations

from ...errors import SdeployError
from ..base import AppBinding, Backend
from ..options import Option
from .runner import CoreMLRunner
from .target import CORE_ML_MIN_IOS, CoreMLTarget


def _check_ios_app(record: dict) -> None:
    if record["details"].get("mode") != "classifier":
        raise SdeployError("the iOS app needs a classifier-mode Core ML model; re-export with --coreml-mode classifier")


BACKEND = Backend(
    name="coreml",
    summary="Core ML ML Program (.mlpackage) via coremltools; native on macOS, sdeploy's interpreter on Linux",
    format="mlpackage",
    target=CoreMLTarget(),
    runner=CoreMLRunner,
    files="<arch>.mlpackage (-tensor, -fp32, -int8)",
    extra="coreml",
    packages=("coremltools",),
    modules=("coremltools",),
    loggers=("coremltools",),
    options=(
        Option("precision", str, "fp16", "Core ML compute precision (-fp32 in the file name for fp32).",
               choices=("fp16", "fp32")),
        Option("min_ios", str, "15", "Core ML minimum deployment target.", choices=CORE_ML_MIN_IOS),
        Option("coreml_mode", str, "classifier", "classifier: image in, classLabel + probabilities + logits out; "
               "tensor: normalised tensor in, logits out.", choices=("classifier", "tensor")),
    ),  # fmt: skip
    bench_variants={"fp32": {"precision": "fp32"}, "fp16": {"precision": "fp16"}, "int8": {"quantize": "int8"}},
    apps={"ios": AppBinding("ShuffleNetClassifier.mlpackage", export_options={"coreml_mode": "classifier"},
                            default=True, check=_check_ios_app)},  # fmt: skip
    locate_options={"coreml_mode": "tensor"},
    color="tab:purple",
    order=30,
)
