"""Real-data accuracy: the committed digits model classifies the held-out digits alike in every runtime.

At fp32 every runtime must get exactly as many held-out digits right as
eager PyTorch; at fp16 (ONNX and NCNN fp16 weights, Core ML fp16 compute)
it may lose at most half a point.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import REPO
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


def readme_digits_lines() -> list[str]:
    """The shell lines of the README's "Real-data check: handwritten digits" block, comments dropped."""
    section = (REPO / "README.md").read_text().split("### Real-data check: handwritten digits", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_digits_commands_rebuild_the_committed_checkpoint_bit_for_bit(tmp_path):
    """The README's four lines, as written, in a scratch copy of the repository's layout."""
    (tmp_path / "models").mkdir()
    shutil.copy(REPO / "models" / "make_digits.py", tmp_path / "models")
    lines = readme_digits_lines()
    assert [line.split()[:2] for line in lines] == [["python", "models/make_digits.py"], ["sdeploy", "finetune"],
                                                    ["sdeploy", "export"], ["sdeploy", "verify"]]  # fmt: skip
    for line in lines:
        words = shlex.split(line)
        command = [sys.executable, *words[1:]] if words[0] == "python" else [sys.executable, "-m", "shufflenet_deploy", *words[1:]]
        proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=3000)
        assert proc.returncode == 0, (line, proc.stdout[-2000:], proc.stderr[-2000:])
    rebuilt = load_model(None, tmp_path / "models" / "digits_v2_x0_5.pt").weights
    assert rebuilt.state_sha256 == load_model(None, DIGITS_CHECKPOINT).weights.state_sha256
    assert "PASSED" in proc.stdout
