"""Core ML: an ML Program (.mlpackage) converted through torch.export.

Classifier mode (default) takes an image: Core ML scales pixels by the
contract's ``scale`` and the model itself subtracts the exact per-channel
mean and divides by the exact per-channel std (Core ML's ImageType only has
one scale for all channels, so folding std into it would average the three
std values).  A ClassifierConfig turns the softmax into ``classLabel`` plus a
probabilities dictionary; the raw ``logits`` stay available as an extra
output for parity checks.  Tensor mode takes the normalised NCHW tensor and
returns logits, like the other targets.

``--quantize int8`` stores the weights as int8 (per output channel,
symmetric) that Core ML expands when it loads the model; activations keep the
compute precision.  int8 weights need iOS 16, so an int8 export raises a lower
``--min-ios`` to 16 and says so in a note.
"""

from __future__ import annotations

import torch
from torch import nn

from ...modelio import ModelIO
from ...preprocess import InputContract
from ...sysutil import quiet_loggers
from ..base import Artifact, ExportContext, Target, TensorSpec, example_batch

CORE_ML_MIN_IOS = ("15", "16", "17", "18")  # ML Programs need iOS 15+
PREVIEW_TYPE_KEY = "com.apple.coreml.model.preview.type"
MAX_DYNAMIC_BATCH = 64
PROBABILITIES = "softmax"  # the MIL variable torch.export names after the aten op
#: ML Programs can store compressed (constexpr) weights from iOS 16 on.
INT8_MIN_IOS = "16"
WEIGHT_QUANTIZER = "compression::linear_quantize_weights"
#: Weights with fewer values stay float (coremltools' default): mostly depthwise kernels, little of the size.
INT8_WEIGHT_THRESHOLD = 2048


class ImageClassifier(nn.Module):
    """Pixels (already multiplied by the contract's scale) -> (logits, probabilities)."""

    def __init__(self, network: nn.Module, contract: InputContract):
        super().__init__()
        self.network = network
        self.normalize = not (all(m == 0 for m in contract.mean) and all(s == 1 for s in contract.std))
        self.register_buffer("mean", torch.tensor(contract.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("inv_std", 1 / torch.tensor(contract.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (image - self.mean) * self.inv_std if self.normalize else image
        logits = self.network(x)
        # coremltools hands the *last* output to the classifier, so the probabilities go last.
        return logits, torch.softmax(logits, dim=1)


class CoreMLTarget(Target):
    name = "coreml"
    suffixes = (".mlpackage",)
    directory_artifact = True

    def variant(self, options) -> str:
        """``tensor``, the I/O parts, ``fp32`` and ``int8`` where they apply, e.g. ``tensor-int8``."""
        parts = (
            "tensor" if options.coreml_mode == "tensor" else "",
            *ModelIO.from_options(options).variant_parts(),
            "fp32" if options.precision == "fp32" else "",
            "int8" if options.int8 else "",
        )
        return "-".join(part for part in parts if part)

    def io_reason(self, options) -> str | None:
        if options.coreml_mode == "classifier":
            return ("a Core ML classifier already takes an image and does the preprocessing itself, and returns "
                    "probabilities; use --coreml-mode tensor for NHWC or softmax tensors")
        if options.embed_preprocess:
            return ("Core ML takes 8-bit pixels only as an image input, which is what --coreml-mode classifier "
                    "(the default) exports, preprocessing included")
        return None

    def export(self, ctx: ExportContext) -> Artifact:
        import coremltools as ct

        options = ctx.options
        classifier = options.coreml_mode == "classifier"
        batch = 1 if classifier else options.batch
        with quiet_coremltools():
            mlmodel = _convert_classifier(ctx, ct) if classifier else _convert_tensor(ctx, ct, batch)
            mlmodel = _finalize(mlmodel, ctx, classifier, ct)

        name = self.file_names(ctx.arch, options)[0]
        mlmodel.save(str(ctx.staging / name))

        notes = []
        if classifier and (options.batch != 1 or options.dynamic_batch):
            notes.append("Core ML classifier models take one image; batch options apply to --coreml-mode tensor")
        if options.half and options.precision == "fp32":
            notes.append("--precision fp32 wins over --half for coreml")
        if options.int8:
            notes += _int8_notes(options)
        size = ctx.img_size
        if classifier:
            inputs = [TensorSpec("image", (1, 3, size, size), "uint8", "image")]
            outputs = [
                TensorSpec("classLabel", (1,), "string", "label"),
                TensorSpec("classLabel_probs", (ctx.num_classes,), "dict[string,double]", "probabilities"),
                TensorSpec("logits", (1, ctx.num_classes)),
            ]
        else:
            dim = "batch" if options.dynamic_batch else batch
            inputs = [ctx.input_spec("input", dim)]
            outputs = [ctx.output_spec(ctx.io.output_name, dim)]
        return Artifact(
            key=self.key(options),
            target=self.name,
            format="mlpackage",
            files=[name],
            precision="int8" if options.int8 else options.precision,
            inputs=inputs,
            outputs=outputs,
            exporter=_exporter(options),
            details={
                "mode": options.coreml_mode,
                "minimum_deployment_target": f"iOS{deployment_target(options)}",
                "compute_precision": options.precision,
                "image_scale": ctx.contract.scale if classifier else None,
                "color_layout": ctx.contract.color_order if classifier else None,
                "normalization": "per-channel mean/std inside the model" if classifier else "caller normalises",
                **({"quantization": _int8_details(mlmodel.get_spec(), options)} if options.int8 else {}),
            },
            notes=notes,
        )


def _exporter(options) -> str:
    steps = "torch.export + coremltools.convert(mlprogram)"
    return f"{steps} + {WEIGHT_QUANTIZER}" if options.int8 else steps


def deployment_target(options) -> str:
    """The minimum iOS the artifact is built for: --min-ios, raised to 16 for int8 weights."""
    if options.int8 and int(options.min_ios) < int(INT8_MIN_IOS):
        return INT8_MIN_IOS
    return options.min_ios


def _int8_weights_config():
    """Symmetric int8, one scale per output channel."""
    import coremltools.optimize.coreml as cto

    config = cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=INT8_WEIGHT_THRESHOLD
    )
    return cto.OptimizationConfig(global_config=config)


def _int8_notes(options) -> list[str]:
    if deployment_target(options) == options.min_ios:
        return []
    raised = f"iOS{options.min_ios} to iOS{INT8_MIN_IOS}"
    return [f"int8 weights need iOS {INT8_MIN_IOS}+: minimum deployment target raised from {raised}"]


def _int8_details(spec, options) -> dict:
    function = spec.mlProgram.functions["main"]
    ops = [op.type for op in function.block_specializations[function.opset].operations]
    return {
        "weights": "int8, per-channel, symmetric (linear_symmetric)",
        "activations": f"{options.precision} (not quantized)",
        "weight_threshold": INT8_WEIGHT_THRESHOLD,
        "dequantize_ops": {t: ops.count(t) for t in sorted(set(ops)) if t.startswith("constexpr_")},
    }


def _convert_classifier(ctx: ExportContext, ct):
    wrapper = ImageClassifier(ctx.model, ctx.contract).eval()
    shape = (1, 3, ctx.img_size, ctx.img_size)
    layout = ct.colorlayout.BGR if ctx.contract.color_order == "BGR" else ct.colorlayout.RGB
    image = ct.ImageType(name="image", shape=shape, scale=ctx.contract.scale, bias=[0.0, 0.0, 0.0], color_layout=layout)
    example = torch.rand(shape) * 255 * ctx.contract.scale
    # With fp16 the last op is a cast of the logits, and coremltools would attach the classifier
    # to it unless told which variable holds the probabilities.
    config = ct.ClassifierConfig(list(ctx.labels), predicted_probabilities_output=PROBABILITIES)
    return _convert(wrapper, example, image, ctx, ct, classifier_config=config)


def _convert_tensor(ctx: ExportContext, ct, batch: int):
    size, io = ctx.img_size, ctx.io
    if ctx.options.dynamic_batch:
        shape = ct.Shape(io.shape(ct.RangeDim(1, MAX_DYNAMIC_BATCH, default=batch), size))
    else:
        shape = io.shape(batch, size)
    tensor = ct.TensorType(name="input", shape=shape)
    example = ctx.example(example_batch(ctx.options))
    return _convert(ctx.model.eval(), example, tensor, ctx, ct)


def _convert(module: nn.Module, example: torch.Tensor, input_type, ctx: ExportContext, ct, **kwargs):
    options = ctx.options
    dynamic = None
    if options.dynamic_batch and options.coreml_mode == "tensor":
        dynamic = ({0: torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH)},)
    # Tracing fails on these networks with current coremltools; torch.export is its supported path.
    program = torch.export.export(module, (example,), dynamic_shapes=dynamic).run_decompositions({})
    target = getattr(ct.target, f"iOS{deployment_target(options)}")
    # Two steps: torch -> MIL program in fp32, then fp16, int8 weights, classifier and packaging.  In one
    # step, fp16 with an iOS16+ target types the outputs as fp16 and coremltools then fails on the
    # classifier's extra outputs (IndexError in get_func_output); the fp32 first step leaves them untyped.
    mil = ct.convert(program, inputs=[input_type], convert_to="milinternal", compute_precision=ct.precision.FLOAT32,
                     minimum_deployment_target=target)  # fmt: skip
    return ct.convert(
        mil,
        convert_to="mlprogram",
        compute_precision=ct.precision.FLOAT16 if options.precision == "fp16" else ct.precision.FLOAT32,
        minimum_deployment_target=target,
        pass_pipeline=_pass_pipeline(options, ct),
        **kwargs,
    )


def _pass_pipeline(options, ct):
    pipeline = ct.PassPipeline.DEFAULT
    if options.int8:
        # Quantizing during the conversion, not the saved model: coremltools cannot reload a saved
        # fp16 classifier for linear_quantize_weights (its class-label list fails to re-serialise).
        pipeline.append_pass(WEIGHT_QUANTIZER)
        pipeline.set_options(WEIGHT_QUANTIZER, {"config": _int8_weights_config()})
    return pipeline


def _finalize(mlmodel, ctx: ExportContext, classifier: bool, ct):
    """Name the logits output, describe every feature and embed the metadata, in one spec edit."""
    spec = mlmodel.get_spec()
    arrays = [o.name for o in spec.description.output if o.type.WhichOneof("Type") == "multiArrayType"]
    output = "logits" if classifier else ctx.io.output_name
    if arrays and arrays[0] != output:
        ct.utils.rename_feature(spec, arrays[0], output)
    meta = ctx.metadata
    spec.description.metadata.author = meta["author"]
    spec.description.metadata.license = meta["license"]
    spec.description.metadata.shortDescription = meta["description"]
    spec.description.metadata.versionString = meta["sdeploy_version"]
    spec.description.metadata.userDefined.update(meta)
    if classifier:
        spec.description.metadata.userDefined[PREVIEW_TYPE_KEY] = "imageClassifier"
    descriptions = _feature_descriptions(ctx)
    for feature in (*spec.description.input, *spec.description.output):
        feature.shortDescription = descriptions.get(feature.name, "")
    return ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)


def _feature_descriptions(ctx: ExportContext) -> dict[str, str]:
    size, contract = ctx.img_size, ctx.contract
    return {
        "image": f"{contract.color_order} image, {size}x{size}: resize the shorter side to {contract.resize_size}, "
        "then centre-crop",
        "input": f"normalised NCHW float32 {contract.color_order} image, {size}x{size}: (pixel*scale - mean)/std",
        "logits": f"raw scores for {ctx.num_classes} classes",
        "probabilities": f"probability of each of {ctx.num_classes} classes",
        "classLabel": "most likely class",
        "classLabel_probs": "probability of each class",
    }


def quiet_coremltools():
    """coremltools logs progress bars and version warnings; the exporter shows its own progress."""
    return quiet_loggers(("coremltools",))
