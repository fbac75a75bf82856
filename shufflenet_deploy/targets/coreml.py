"""Core ML: an ML Program (.mlpackage) converted through torch.export.

Classifier mode (default) takes an image: Core ML scales pixels by the
contract's ``scale`` and the model itself subtracts the exact per-channel
mean and divides by the exact per-channel std (Core ML's ImageType only has
one scale for all channels, so folding std into it would average the three
std values).  A ClassifierConfig turns the softmax into ``classLabel`` plus a
probabilities dictionary; the raw ``logits`` stay available as an extra
output for parity checks.  Tensor mode takes the normalised NCHW tensor and
returns logits, like the other targets.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import torch
from torch import nn

from ..preprocess import InputContract
from .base import Artifact, ExportContext, Target, TensorSpec, example_batch

PREVIEW_TYPE_KEY = "com.apple.coreml.model.preview.type"
MAX_DYNAMIC_BATCH = 64
PROBABILITIES = "softmax"  # the MIL variable torch.export names after the aten op


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
    requires = ("coremltools",)
    extra = "coreml"
    description = "Core ML ML Program (.mlpackage)"

    def export(self, ctx: ExportContext) -> Artifact:
        import coremltools as ct

        options = ctx.options
        classifier = options.coreml_mode == "classifier"
        batch = 1 if classifier else options.batch
        with _quiet_coremltools():
            mlmodel = _convert_classifier(ctx, ct) if classifier else _convert_tensor(ctx, ct, batch)
            mlmodel = _finalize(mlmodel, ctx, classifier, ct)

        variant = "-".join(v for v in ("tensor" if not classifier else "", "fp32" if options.precision == "fp32" else "") if v)
        name = ctx.file_name(".mlpackage", variant)
        mlmodel.save(str(ctx.staging / name))

        notes = []
        if classifier and (options.batch != 1 or options.dynamic_batch):
            notes.append("Core ML classifier models take one image; batch options apply to --coreml-mode tensor")
        if options.half and options.precision == "fp32":
            notes.append("--precision fp32 wins over --half for coreml")
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
            inputs = [TensorSpec("input", (dim, 3, size, size))]
            outputs = [TensorSpec("logits", (dim, ctx.num_classes))]
        return Artifact(
            key="coreml" + (f"-{variant}" if variant else ""),
            target=self.name,
            format="mlpackage",
            files=[name],
            precision=options.precision,
            inputs=inputs,
            outputs=outputs,
            exporter="torch.export + coremltools.convert(mlprogram)",
            details={
                "mode": options.coreml_mode,
                "minimum_deployment_target": f"iOS{options.min_ios}",
                "compute_precision": options.precision,
                "image_scale": ctx.contract.scale if classifier else None,
                "color_layout": ctx.contract.color_order if classifier else None,
                "normalization": "per-channel mean/std inside the model" if classifier else "caller normalises",
            },
            notes=notes,
        )


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
    size = ctx.img_size
    if ctx.options.dynamic_batch:
        shape = ct.Shape((ct.RangeDim(1, MAX_DYNAMIC_BATCH, default=batch), 3, size, size))
    else:
        shape = (batch, 3, size, size)
    tensor = ct.TensorType(name="input", shape=shape)
    example = torch.zeros(example_batch(ctx.options), 3, size, size)
    return _convert(ctx.model.eval(), example, tensor, ctx, ct)


def _convert(module: nn.Module, example: torch.Tensor, input_type, ctx: ExportContext, ct, **kwargs):
    dynamic = None
    if ctx.options.dynamic_batch and ctx.options.coreml_mode == "tensor":
        dynamic = ({0: torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH)},)
    # Tracing fails on these networks with current coremltools; torch.export is its supported path.
    program = torch.export.export(module, (example,), dynamic_shapes=dynamic).run_decompositions({})
    precision = ct.precision.FLOAT16 if ctx.options.precision == "fp16" else ct.precision.FLOAT32
    return ct.convert(
        program,
        inputs=[input_type],
        convert_to="mlprogram",
        compute_precision=precision,
        minimum_deployment_target=getattr(ct.target, f"iOS{ctx.options.min_ios}"),
        **kwargs,
    )


def _finalize(mlmodel, ctx: ExportContext, classifier: bool, ct):
    """Name the logits output, describe every feature and embed the metadata, in one spec edit."""
    spec = mlmodel.get_spec()
    arrays = [o.name for o in spec.description.output if o.type.WhichOneof("Type") == "multiArrayType"]
    if arrays and arrays[0] != "logits":
        ct.utils.rename_feature(spec, arrays[0], "logits")
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
        "classLabel": "most likely class",
        "classLabel_probs": "probability of each class",
    }


@contextlib.contextmanager
def _quiet_coremltools():
    """coremltools logs progress bars and version warnings; the exporter shows its own progress."""
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
