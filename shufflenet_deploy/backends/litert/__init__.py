"""LiteRT (TensorFlow Lite): a ``.tflite`` converted by litert-torch, with TFLite metadata; runs in ai-edge-litert.

``target.py`` converts (fp32; ``--half`` and ``--quantize int8`` through
ai-edge-quantizer, see ``quantize.py``), ``metadata.py`` writes and reads the
TFLite model metadata, ``runner.py`` runs the Interpreter with XNNPACK.
"""

from __future__ import annotations

from ...errors import SdeployError
from ..base import AppBinding, Backend
from .runner import LiteRTRunner
from .target import LiteRTTarget


def _check_android_app(record: dict) -> None:
    batch = record["inputs"][0]["shape"][0]
    if batch != 1:
        raise SdeployError(f"the Android app feeds one image, but this .tflite takes a batch of {batch}; "
                           "re-export litert with --batch 1")  # fmt: skip


BACKEND = Backend(
    name="litert",
    summary="LiteRT / TensorFlow Lite model (.tflite) via litert-torch, with TFLite metadata; runs in ai-edge-litert",
    format="tflite",
    target=LiteRTTarget(),
    runner=LiteRTRunner,
    files="<arch>.tflite (-fp16, -int8)",
    extra="litert",
    packages=("litert-torch", "litert-converter", "ai-edge-litert", "ai-edge-quantizer"),
    modules=("litert_torch", "ai_edge_litert", "ai_edge_quantizer"),
    # litert-torch imports JAX and torchao, whose import-time warnings come through these.
    loggers=("litert_torch", "ai_edge_quantizer", "absl", "jax", "torchao", "torch.utils._pytree"),
    bench_variants={"fp32": {}, "fp16": {"half": True}, "int8": {"quantize": "int8"}},
    # NHWC: what Android bitmaps hold and what TFLite image metadata describes (and ~5 % faster in XNNPACK).
    apps={"android": AppBinding("model.tflite", export_options={"layout": "nhwc"}, check=_check_android_app)},
    color="goldenrod",  # the ten tab: colours are all taken by other backends
    order=60,
)
