"""Real-data accuracy: the committed digits model classifies the held-out digits alike in every runtime.

At fp32 every runtime must get exactly as many held-out digits right as
eager PyTorch; at fp16 (ONNX and NCNN fp16 weights, Core ML fp16 compute)
it may lose at most half a point.
"""

from __future__ import annotations

import pytest
from digits_data import DIGITS_CHECKPOINT, write_digits

from shufflenet_deploy.verify import verify
from shufflenet_deploy.zoo import load_model

pytestmark = pytest.mark.slow

#: At least every format's own runtime and the ONNX cross-checks (CI installs every extra); a new backend adds its own.
ALL_RUNTIMES = {"onnxruntime", "torchscript", "coreml", "ncnn", "executorch", "litert",
                "openvino", "opencv", "opencv-classic", "tract"}
PRECISIONS = {
    "fp32": {"precision": "fp32"},  # every artifact fp32, Core ML too
    "fp16": {"half": True},  # Core ML's default fp16 compute precision; TorchScript Mobile stays fp32
}
MAX_FP16_ACCURACY_DROP = 0.005


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    return write_digits(tmp_path_factory.mktemp("digits")) / "heldout"


@pytest.fixture(scope="module")
def recorded():
    return load_model(None, DIGITS_CHECKPOINT).weights.extra["training"]["heldout"]


def correct_count(accuracy: float, total: int) -> int:
    return round(accuracy * total)


@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_every_runtime_classifies_the_heldout_digits_like_pytorch(precision, heldout, recorded, export_cache):
    export_dir = export_cache("v2_x0_5", "all", weights=str(DIGITS_CHECKPOINT), img_size=64, **PRECISIONS[precision])
    report = verify(export_dir, images=heldout, samples=0, progress=False)
    verdicts = {r.key: (r.status, r.error, r.accuracy) for r in report.runtimes}
    assert report.passed, verdicts
    assert {r.runtime for r in report.runtimes} >= ALL_RUNTIMES
    assert report.images == recorded["total"]
    eager = correct_count(report.reference["accuracy"], report.images)
    assert eager == recorded["correct"]
    for r in report.runtimes:
        if r.precision == "fp32":
            assert correct_count(r.accuracy, report.images) == eager, (r.key, r.accuracy)
        else:
            assert report.reference["accuracy"] - r.accuracy <= MAX_FP16_ACCURACY_DROP, (r.key, r.accuracy)
    if precision == "fp16":
        assert {r.precision for r in report.runtimes} == {"fp16", "fp32"}
