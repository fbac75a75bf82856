"""The LiteRT target: ``litert_torch.convert`` to an fp32 ``.tflite``, then fp16 or int8, then the TFLite metadata.

Every precision starts from the same fp32 conversion of ``ctx.model`` (which
already carries the artifact's I/O: NHWC, pixels, softmax), so there is one
conversion path; :mod:`.quantize` makes the fp16 and int8 files from it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from ...manifest import tool_versions
from ...modelio import to_model_input
from ...nets.common import Truncated
from ..base import Artifact, ExportContext, Target
from ..calibration import fixed_batches
from ..options import ExportOptions
from . import quantize
from .metadata import ClassifierMetadata, attach_metadata
from .runner import delegation, make_interpreter, native_stderr_to_python

EXPORTERS = {
    "fp32": "litert_torch.convert + TFLite metadata",
    "fp16": "litert_torch.convert + ai-edge-quantizer float_casting (fp16 weights, fp32 I/O) + TFLite metadata",
    "int8": "litert_torch.convert + ai-edge-quantizer static_wi8_ai8 (min/max ranges, float I/O) + TFLite metadata",
}
CONVERTER_PACKAGES = ("litert-torch", "litert-converter", "ai-edge-litert", "ai-edge-quantizer")
DYNAMIC_BATCH_UNAVAILABLE = (
    "litert-torch cannot convert ShuffleNet with a dynamic batch (its JAX lowering needs concrete shapes for the "
    "channel shuffle's reshape); export litert with a fixed --batch N instead"
)


class LiteRTTarget(Target):
    name = "litert"
    suffixes = (".tflite",)
    int8_calibrates = True  # static int8: activation ranges come from calibration images

    def unavailable(self, options: ExportOptions) -> str | None:
        return DYNAMIC_BATCH_UNAVAILABLE if options.dynamic_batch else super().unavailable(options)

    def export(self, ctx: ExportContext) -> Artifact:
        options = ctx.options
        # LiteRT, its converter and its quantizer log from C++: into the exporter's log, with Python's output.
        with native_stderr_to_python():
            fp32 = convert(ctx)
            input_name, output_name = signature_names(fp32)
            model, quantization = _lower_precision(ctx, fp32, input_name)
            metadata = ClassifierMetadata.from_context(ctx)
            model = attach_metadata(model, metadata)
            xnnpack = delegation(model)
        name = self.file_names(ctx.arch, options)[0]
        (ctx.staging / name).write_bytes(model)
        precision = "int8" if options.int8 else "fp16" if options.half else "fp32"
        versions = tool_versions()
        return Artifact(
            key=self.key(options),
            target=self.name,
            format="tflite",
            files=[name],
            precision=precision,
            inputs=[ctx.input_spec(input_name, options.batch)],
            outputs=[ctx.output_spec(output_name, options.batch)],
            exporter=EXPORTERS[precision],
            details={
                "converter_versions": {package: versions[package] for package in CONVERTER_PACKAGES},
                "maxpool_zero_padding": _zero_padding_note(ctx.model),
                **xnnpack,
                "metadata": metadata.summary(),
                **quantization,
            },
        )


def _lower_precision(ctx: ExportContext, fp32: bytes, input_name: str) -> tuple[bytes, dict]:
    """The fp16 or int8 model made from the fp32 one (or the fp32 one), and what the manifest records about it."""
    if ctx.options.half:
        return quantize.fp16_weights(fp32), {}
    if ctx.options.int8:
        int8 = quantize.int8_static(fp32, input_name, calibration_batches(ctx))
        return int8, {"quantization": {**quantize.INT8_DETAILS, "calibration": ctx.calibration.describe()}}
    return fp32, {}


def convert(ctx: ExportContext) -> bytes:
    """The fp32 .tflite of ``ctx.model`` at the export's fixed batch size."""
    import litert_torch

    module = zero_pad_maxpools(ctx.model).eval()
    converted = litert_torch.convert(module, (ctx.example(ctx.options.batch),))
    return bytes(converted.model_content())  # serialising runs the MLIR converter's flatbuffer export


def signature_names(tflite: bytes) -> tuple[str, str]:
    """The input and output names of the model's one signature (litert-torch: ``args_0`` and ``output_0``)."""
    signature = next(iter(make_interpreter(tflite, xnnpack=False).get_signature_list().values()))
    return signature["inputs"][0], signature["outputs"][0]


def calibration_batches(ctx: ExportContext) -> list:
    """The calibration images as the artifact takes them (pixels, NHWC...), in batches of its fixed size."""
    if ctx.calibration is None:  # export() loads it for every target that calibrates
        raise ValueError("int8 LiteRT export needs calibration images")
    return fixed_batches(to_model_input(ctx.calibration.tensors, ctx.contract, ctx.io), ctx.options.batch)


# ---------------------------------------------------------------- the stem's max-pool


class ZeroPadMaxPool(nn.Module):
    """``MaxPool2d`` whose padding is zeros, for inputs that are never negative (so the result is the same).

    A -inf padded max-pool converts to PADV2 + MAX_POOL_2D; XNNPACK does not
    take PADV2, which splits the graph in two XNNPACK partitions with a
    reference-kernel op between them (and CompiledModel reports the model as
    not fully accelerated).  A zero PAD is delegated like everything else.
    """

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        self.kernel_size, self.stride, self.padding = pool.kernel_size, pool.stride, pool.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.padding,) * 4 if isinstance(self.padding, int) else (self.padding[1],) * 2 + (self.padding[0],) * 2
        return F.max_pool2d(F.pad(x, pad), self.kernel_size, self.stride)


def zero_pad_maxpools(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose padded max-pools that follow a ReLU pad with zeros (``model`` itself if none)."""
    if not _pools_after_relu(model):
        return model
    model = copy.deepcopy(model)
    replaced = {id(pool) for pool in _pools_after_relu(model)}
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if id(child) in replaced:
                setattr(parent, name, ZeroPadMaxPool(child))
    return model


def _zero_padding_note(model: nn.Module) -> str:
    count = len(_pools_after_relu(model))
    return f"{count} max-pool after a ReLU pads with zeros (PAD instead of PADV2, same result)" if count else "none"


def _pools_after_relu(model: nn.Module) -> list[nn.MaxPool2d]:
    """Padded max-pools whose input is a ReLU's output, found in the networks' ordered units (and their prefixes)."""
    found = []
    for units in _unit_sequences(model):
        for before, unit in pairwise(units):
            plain = isinstance(unit, nn.MaxPool2d) and unit.dilation == 1 and not unit.ceil_mode
            if plain and unit.padding and _ends_in_relu(before):
                found.append(unit)
    return found


def _unit_sequences(model: nn.Module) -> Iterator[list[nn.Module]]:
    for module in model.modules():
        if isinstance(module, Truncated):  # verify --locate's prefix of a network
            yield list(module.blocks)
        elif callable(getattr(module, "units", None)):
            yield [unit for _, unit in module.units()]


def _ends_in_relu(module: nn.Module) -> bool:
    """Whether the module's output is a ReLU's (only a Sequential's last child is surely what it returns)."""
    if isinstance(module, nn.Sequential) and len(module):
        return _ends_in_relu(module[-1])
    return isinstance(module, nn.ReLU)
