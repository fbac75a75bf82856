"""ONNX: torch.export-based exporter (TorchScript exporter below opset 18), onnxsim, checker, metadata.

``--half`` stores fp16 weights; ``--quantize int8`` quantizes the simplified
fp32 graph statically with onnxruntime (see :mod:`.onnx_int8`).
"""

from __future__ import annotations

import io

import torch

from ..errors import SdeployError
from .base import Artifact, ExportContext, Target, TensorSpec, batch_dim, example_batch
from .onnx_int8 import quantize_int8

#: The torch.export-based exporter emits opset 18 or newer; older runtimes need the TorchScript exporter.
DYNAMO_MIN_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "input", "logits"


class OnnxTarget(Target):
    name = "onnx"
    requires = ("onnx", "onnxsim", "onnxscript", "onnxconverter_common")
    extra = "onnx"
    description = "ONNX model (.onnx), simplified with onnxsim"
    int8_calibrates = True  # static int8: activation ranges come from calibration images

    def export(self, ctx: ExportContext) -> Artifact:
        import onnx

        options = ctx.options
        example = torch.zeros(example_batch(options), 3, ctx.img_size, ctx.img_size)
        if options.opset >= DYNAMO_MIN_OPSET:
            model, exporter = _export_dynamo(ctx, example), "torch.onnx.export(dynamo=True)"
        else:
            model, exporter = _export_torchscript(ctx, example), "torch.onnx.export(dynamo=False)"
        nodes_before = len(model.graph.node)
        model = _simplify(model, ctx)
        nodes_after = len(model.graph.node)
        precision, exporter, details = "fp32", exporter + " + onnxsim", {}
        if options.half:
            model, precision, exporter = _to_fp16(model), "fp16", exporter + " + float16 (fp32 I/O)"
        elif options.int8:
            model, details["quantization"] = quantize_int8(model, ctx, INPUT_NAME)
            precision, exporter = "int8", exporter + " + onnxruntime quantize_static (QDQ, fp32 I/O)"
        _set_metadata(model, ctx)
        onnx.checker.check_model(model, full_check=True)

        variant = "" if precision == "fp32" else precision
        name = ctx.file_name(".onnx", variant)
        onnx.save(model, ctx.staging / name)
        batch = batch_dim(options)
        return Artifact(
            key="onnx" + (f"-{variant}" if variant else ""),
            target=self.name,
            format="onnx",
            files=[name],
            precision=precision,
            inputs=[TensorSpec(INPUT_NAME, (batch, 3, ctx.img_size, ctx.img_size))],
            outputs=[TensorSpec(OUTPUT_NAME, (batch, ctx.num_classes))],
            exporter=exporter,
            details={
                "opset": options.opset,
                "ir_version": model.ir_version,
                "nodes_before_simplify": nodes_before,
                "nodes_after_simplify": nodes_after,
                "dynamic_batch": options.dynamic_batch,
                **details,
            },
        )


def _export_dynamo(ctx: ExportContext, example: torch.Tensor):
    dynamic = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if ctx.options.dynamic_batch else None
    program = torch.onnx.export(
        ctx.model,
        (example,),
        dynamo=True,
        opset_version=ctx.options.opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=dynamic,
        external_data=False,
        verbose=False,
    )
    return program.model_proto


def _export_torchscript(ctx: ExportContext, example: torch.Tensor):
    import onnx

    buffer = io.BytesIO()
    dynamic = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if ctx.options.dynamic_batch else None
    torch.onnx.export(
        ctx.model,
        (example,),
        buffer,
        dynamo=False,
        opset_version=ctx.options.opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes=dynamic,
        do_constant_folding=True,
    )
    return onnx.load_from_string(buffer.getvalue())


def _simplify(model, ctx: ExportContext):
    import onnxsim

    shapes = {INPUT_NAME: [max(ctx.options.batch, 1), 3, ctx.img_size, ctx.img_size]}
    # check_n=1: onnxsim runs both graphs on random input and refuses a simplification that changes results.
    simplified, ok = onnxsim.simplify(model, check_n=1, test_input_shapes=shapes)
    if not ok:
        raise SdeployError("onnxsim could not validate the simplified ONNX graph")
    return simplified


def _to_fp16(model):
    from onnxconverter_common import float16

    # keep_io_types: callers still feed and read float32; Casts at the edges convert.
    return float16.convert_float_to_float16(model, keep_io_types=True)


def _set_metadata(model, ctx: ExportContext) -> None:
    import onnx

    onnx.helper.set_model_props(model, ctx.metadata)
    model.producer_name = "sdeploy"
    model.producer_version = ctx.metadata.get("sdeploy_version", "")
    model.doc_string = ctx.metadata.get("description", "")

