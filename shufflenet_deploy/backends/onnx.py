"""ONNX: torch.export-based exporter (TorchScript exporter below opset 18), onnxsim, checker, metadata; onnxruntime.

``--half`` stores fp16 weights that a Cast turns back into fp32 (see :func:`_to_fp16`);
``--quantize int8`` quantizes the simplified fp32 graph statically with
onnxruntime (see :mod:`.onnx_int8`).
"""

from __future__ import annotations

import io

import numpy as np
import torch

from ..errors import SdeployError
from ..modelio import main_output
from .base import AppBinding, Artifact, Backend, ExportContext, Runner, Target, batch_dim, example_batch
from .onnx_int8 import quantize_int8
from .options import ExportOptions, Option

#: The manifest format of .onnx artifacts; the ONNX cross-check runtimes take it from here.
FORMAT = "onnx"

#: The torch.export-based exporter emits opset 18 or newer; older runtimes need the TorchScript exporter.
DYNAMO_MIN_OPSET = 18
DEFAULT_OPSET = 18
#: Per-channel int8 weights need QuantizeLinear/DequantizeLinear with an ``axis`` (opset 13).
INT8_MIN_OPSET = 13
INPUT_NAME = "input"


def max_onnx_opset() -> int:
    try:
        import onnx
    except ImportError:
        return 23
    return onnx.defs.onnx_opset_version()


def _check_opset(opset: int, options: ExportOptions) -> None:
    if not 9 <= opset <= max_onnx_opset():
        raise SdeployError(f"--opset {opset} is not supported: use 9 to {max_onnx_opset()} (default {DEFAULT_OPSET})")
    if options.int8 and opset < INT8_MIN_OPSET:
        raise SdeployError(f"--quantize int8 needs --opset {INT8_MIN_OPSET} or newer (per-channel int8 weights), got {opset}")


class OnnxTarget(Target):
    name = "onnx"
    suffixes = (".onnx",)
    int8_calibrates = True  # static int8: activation ranges come from calibration images

    def export(self, ctx: ExportContext) -> Artifact:
        import onnx

        options = ctx.options
        example = ctx.example(example_batch(options))
        if options.opset >= DYNAMO_MIN_OPSET:
            model, exporter = _export_dynamo(ctx, example), "torch.onnx.export(dynamo=True)"
        else:
            model, exporter = _export_torchscript(ctx, example), "torch.onnx.export(dynamo=False)"
        nodes_before = len(model.graph.node)
        model = _simplify(model, ctx)
        nodes_after = len(model.graph.node)
        precision, exporter, details = "fp32", exporter + " + onnxsim", {}
        if options.half:
            model, precision, exporter = _to_fp16(model), "fp16", exporter + " + fp16 weights (fp32 compute and I/O)"
        elif options.int8:
            model, details["quantization"] = quantize_int8(model, ctx, INPUT_NAME)
            precision, exporter = "int8", exporter + " + onnxruntime quantize_static (QDQ, fp32 I/O)"
        _set_metadata(model, ctx)
        onnx.checker.check_model(model, full_check=True)

        name = self.file_names(ctx.arch, options)[0]
        onnx.save(model, ctx.staging / name)
        batch = batch_dim(options)
        return Artifact(
            key=self.key(options),
            target=self.name,
            format=FORMAT,
            files=[name],
            precision=precision,
            inputs=[ctx.input_spec(INPUT_NAME, batch)],
            outputs=[ctx.output_spec(ctx.io.output_name, batch)],
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
        output_names=[ctx.io.output_name],
        dynamic_shapes=dynamic,
        external_data=False,
        verbose=False,
    )
    return program.model_proto


def _export_torchscript(ctx: ExportContext, example: torch.Tensor):
    import onnx

    buffer = io.BytesIO()
    dynamic = {INPUT_NAME: {0: "batch"}, ctx.io.output_name: {0: "batch"}} if ctx.options.dynamic_batch else None
    torch.onnx.export(
        ctx.model,
        (example,),
        buffer,
        dynamo=False,
        opset_version=ctx.options.opset,
        input_names=[INPUT_NAME],
        output_names=[ctx.io.output_name],
        dynamic_axes=dynamic,
        do_constant_folding=True,
    )
    return onnx.load_from_string(buffer.getvalue())


def _simplify(model, ctx: ExportContext):
    import onnxsim

    shapes = {INPUT_NAME: list(ctx.io.shape(max(ctx.options.batch, 1), ctx.img_size))}
    # check_n=1: onnxsim runs both graphs on random input and refuses a simplification that changes results.
    simplified, ok = onnxsim.simplify(model, check_n=1, test_input_shapes=shapes)
    if not ok:
        raise SdeployError("onnxsim could not validate the simplified ONNX graph")
    return simplified


def _to_fp16(model):
    """Store every float32 weight as float16, each followed by a Cast back to float32.

    Half the file, and every runtime runs it: the graph still computes in
    fp32 (runtimes fold the Casts into fp32 constants when they load it), only
    the weights are rounded to fp16.  A graph that computes in fp16
    (onnxconverter_common's float16 conversion) fails elsewhere: OpenCV's
    classic DNN engine has no fp16 layers, tract 0.23 cannot type an fp16 Gemm
    with bias (and runs fp16 convolutions over 100x slower on x86), and onnxruntime's
    x86 CPU provider wraps each fp16 node in Casts, 1.3x slower than fp32.
    """
    import onnx

    fp16_max = float(np.finfo(np.float16).max)
    casts = []
    for init in model.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        name = init.name
        weight = np.clip(onnx.numpy_helper.to_array(init), -fp16_max, fp16_max).astype(np.float16)
        init.CopyFrom(onnx.numpy_helper.from_array(weight, f"{name}_fp16"))
        casts.append(onnx.helper.make_node("Cast", [f"{name}_fp16"], [name], name=f"{name}_to_fp32",
                                           to=onnx.TensorProto.FLOAT))  # fmt: skip
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _set_metadata(model, ctx: ExportContext) -> None:
    import onnx

    onnx.helper.set_model_props(model, ctx.metadata)
    model.producer_name = "sdeploy"
    model.producer_version = ctx.metadata.get("sdeploy_version", "")
    model.doc_string = ctx.metadata.get("description", "")



class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"
    requires = ("onnxruntime",)
    extra = "onnx"

    def load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT warns about harmless initializer cleanups
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = main_output(self.record)["name"]
        self.version = ort.__version__

    def run_fixed(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    @property
    def description(self) -> str:
        return f"onnxruntime {self.version} CPUExecutionProvider, {self.threads or 'default'} threads"


BACKEND = Backend(
    name="onnx",
    summary="ONNX model (.onnx) via torch.export, simplified with onnxsim; runs in onnxruntime",
    format=FORMAT,
    target=OnnxTarget(),
    runner=OnnxRuntimeRunner,
    files="<arch>.onnx (-fp16, -int8)",
    extra="onnx",
    packages=("onnx", "onnxscript", "onnxsim", "onnxruntime"),
    modules=("onnx", "onnxsim", "onnxscript", "onnxruntime"),
    options=(
        Option("opset", int, DEFAULT_OPSET, "ONNX opset; below 18 uses the TorchScript-based exporter.",
               check=_check_opset),
    ),  # fmt: skip
    bench_variants={"fp32": {}, "fp16": {"half": True}, "int8": {"quantize": "int8"}},
    apps={"web": AppBinding("model.onnx", default=True)},
    color="tab:blue",
    order=10,
)
