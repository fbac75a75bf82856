"""ExecuTorch: a ``.pte`` program whose network runs in one XNNPACK partition; runs in ``executorch.runtime``.

``delegable.py`` holds the export-time forms of the nets that XNNPACK takes
whole, ``target.py`` exports (fp32, ``--half``, ``--quantize int8`` by PT2E,
``--dynamic-batch``) and counts what was delegated, ``runner.py`` runs a
``.pte`` and reads its metadata back.  The Android demo's default engine is
ExecuTorch's AAR: :data:`ANDROID_AAR_VERSION` is the one version both sides
use (a test checks android_demo/app/build.gradle.kts pins it).
"""

from __future__ import annotations

import re

from ...errors import SdeployError
from ...tolerances import Fp16Rule
from ..base import AppBinding, Backend
from ..options import MAX_BATCH, Option
from .runner import ExecuTorchRunner
from .target import ExecuTorchTarget

#: org.pytorch:executorch-android in the Android demo: the runtime of the executorch==1.5.1 exporter.
ANDROID_AAR_VERSION = "1.5.1"
DEFAULT_MAX_BATCH = 8


def release(version: str) -> tuple[int, ...]:
    """``1.5.1+cpu`` -> (1, 5, 1): the numeric release, for ordering versions."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        raise SdeployError(f"cannot read the ExecuTorch version '{version}'")
    return tuple(int(part or 0) for part in match.groups())


def _check_android_app(record: dict) -> None:
    """ExecuTorch promises no forward compatibility: a .pte needs a runtime at least as new as its exporter."""
    exporter = record["details"].get("executorch_version")
    if exporter is None:
        raise SdeployError("the .pte records no executorch version, so its compatibility with the Android app's "
                           f"runtime (executorch-android {ANDROID_AAR_VERSION}) is unknown; re-export it with this sdeploy")  # fmt: skip
    if release(exporter) > release(ANDROID_AAR_VERSION):
        raise SdeployError(f"the .pte was exported by executorch {exporter}, newer than the Android app's runtime "
                           f"(executorch-android {ANDROID_AAR_VERSION}), which may not load it; re-export with "
                           f'pip install "executorch=={ANDROID_AAR_VERSION}", or raise the AAR version in '
                           "android_demo/app/build.gradle.kts")  # fmt: skip
    batch = record["inputs"][0]["shape"][0]
    if batch not in (1, "batch"):
        raise SdeployError(f"the Android app feeds one image, but this .pte takes a batch of {batch}; "
                           "re-export executorch with --batch 1")  # fmt: skip


BACKEND = Backend(
    name="executorch",
    summary="ExecuTorch program (.pte), the network in one XNNPACK partition; runs in executorch.runtime",
    format="pte",
    target=ExecuTorchTarget(),
    runner=ExecuTorchRunner,
    files="<arch>.pte (-fp16, -int8)",
    extra="executorch",
    packages=("executorch",),
    modules=("executorch.exir", "executorch.backends.xnnpack", "executorch.runtime", "torchao.quantization.pt2e"),
    # Importing executorch/torchao warns through these (torch's deprecation of Enum constants, torchao's
    # missing CUDA kernels); the exporter's log keeps them.
    loggers=("executorch", "torchao", "torch.utils._pytree", "torch._export"),
    options=(
        Option("pte_max_batch", int, DEFAULT_MAX_BATCH, "Largest batch a --dynamic-batch .pte takes (at least "
               "--batch): ExecuTorch plans its memory for this batch.", minimum=2, maximum=MAX_BATCH),
    ),  # fmt: skip
    bench_variants={"fp32": {}, "fp16": {"half": True}, "int8": {"quantize": "int8"}},
    # XNNPACK's fp16 kernels accumulate in fp16, so a sound .pte lands further from the floor than the
    # other fp16 artifacts, the more so the wider the network: up to 7.1x its max abs error and 48x its
    # cosine gap (every V2 width and V1 g3/g8 at 64 px, V2 0.5x/1.0x and V1 g3 at 224), against 1.5x and
    # 2x for the others. One conv scaled by 1.3 gives 49-89x and 2600-5900x.
    tolerances={"fp16": Fp16Rule(abs_multiple=12.0, cosine_multiple=96.0)},
    apps={"android": AppBinding("model.pte", default=True, check=_check_android_app)},
    color="tab:red",
    order=50,
)
