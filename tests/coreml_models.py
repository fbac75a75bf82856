"""Small Core ML packages for the NumPy interpreter's tests, built with coremltools.

``mil_package`` builds a program op by op (for ops and parameters torch never
produces); ``torch_package`` converts a module the way sdeploy's exporter does
(torch.export, then ``coremltools.convert``); ``export_classifier`` plus
``classifier_package`` mirror the exporter's classifier mode.
"""

from __future__ import annotations

from pathlib import Path

import coremltools as ct
import numpy as np
import torch
from coremltools.converters.mil import Builder as mb
from torch import nn

from shufflenet_deploy.backends.coreml.target import quiet_coremltools

PRECISIONS = {"fp16": ct.precision.FLOAT16, "fp32": ct.precision.FLOAT32}
LAYOUTS = {"RGB": ct.colorlayout.RGB, "BGR": ct.colorlayout.BGR, "GRAYSCALE": ct.colorlayout.GRAYSCALE}


def mil_package(path: Path, build, *shapes: tuple, target=ct.target.iOS15, precision="fp32", **convert_kwargs) -> Path:
    """Convert ``build`` (MIL builder calls; its parameters name the inputs, one per shape) into ``path``."""
    program = mb.program(input_specs=[mb.TensorSpec(shape=shape) for shape in shapes], opset_version=target)(build)
    with quiet_coremltools():
        model = ct.convert(
            program,
            convert_to="mlprogram",
            minimum_deployment_target=target,
            compute_precision=PRECISIONS[precision],
            **convert_kwargs,
        )
    model.save(str(path))
    return path


def export(module: nn.Module, example: torch.Tensor, dynamic_batch: bool = False):
    """torch.export, as sdeploy's Core ML target does (the result can be converted more than once)."""
    dynamic = ({0: torch.export.Dim("batch", min=1, max=16)},) if dynamic_batch else None
    return torch.export.export(module.eval(), (example,), dynamic_shapes=dynamic).run_decompositions({})


def convert(path: Path, exported, input_type, precision="fp32", target=ct.target.iOS15, **convert_kwargs) -> Path:
    with quiet_coremltools():
        model = ct.convert(
            exported,
            inputs=[input_type],
            convert_to="mlprogram",
            compute_precision=PRECISIONS[precision],
            minimum_deployment_target=target,
            **convert_kwargs,
        )
    model.save(str(path))
    return path


def torch_package(
    path: Path,
    module: nn.Module,
    example: torch.Tensor,
    input_type=None,
    precision="fp32",
    target=ct.target.iOS15,
    dynamic_batch: bool = False,
    **convert_kwargs,
) -> Path:
    """Export and convert ``module``; by default its input is a TensorType named ``input``."""
    if input_type is None:
        shape = (ct.RangeDim(1, 16, 1), *example.shape[1:]) if dynamic_batch else tuple(example.shape)
        input_type = ct.TensorType(name="input", shape=shape)
    exported = export(module, example, dynamic_batch)
    return convert(path, exported, input_type, precision, target, **convert_kwargs)


def rename_arrays(path: Path, names: list[str]) -> Path:
    """Rename the package's multiArray outputs, in order (the exporter names its logits output so)."""
    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    arrays = [o.name for o in spec.description.output if o.type.WhichOneof("Type") == "multiArrayType"]
    for old, new in zip(arrays, names):
        if old != new:
            ct.utils.rename_feature(spec, old, new)
    ct.models.MLModel(spec, weights_dir=model.weights_dir, skip_model_load=True).save(str(path))
    return path


class ImageClassifier(nn.Module):
    """The exporter's classifier wrapper: pixels*scale -> exact per-channel (x - mean) / std -> (logits, probs)."""

    def __init__(self, network: nn.Module, mean=None, std=None):
        super().__init__()
        self.network = network
        self.normalize = mean is not None
        if self.normalize:
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
            # A buffer, not 1/std in forward: coremltools turns reciprocal into inverse(epsilon=1e-4).
            self.register_buffer("inv_std", 1 / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image):
        x = (image - self.mean) * self.inv_std if self.normalize else image
        logits = self.network(x)
        return logits, torch.softmax(logits, dim=1)


def export_classifier(network: nn.Module, size: int, scale=1 / 255, mean=None, std=None):
    """The exporter's classifier wrapper around ``network``, exported for a (1, 3, size, size) image."""
    return export(ImageClassifier(network, mean, std), torch.rand(1, 3, size, size) * 255 * scale)


def classifier_package(
    path: Path, exported, labels: list[str], precision: str, color_layout="RGB", scale=1 / 255
) -> Path:
    """Classifier mode: an ImageType input, classLabel + classLabel_probs from the softmax, and ``logits``."""
    shape = tuple(exported.example_inputs[0][0].shape)
    layout = LAYOUTS[color_layout]
    image = ct.ImageType(name="image", shape=shape, scale=scale, bias=[0.0, 0.0, 0.0], color_layout=layout)
    # Name the probabilities explicitly: with fp16, the last op is the logits' cast back to fp32,
    # and coremltools would otherwise attach the classifier to the logits.
    config = ct.ClassifierConfig(labels, predicted_probabilities_output="softmax")
    convert(path, exported, image, precision, classifier_config=config)
    return rename_arrays(path, ["logits"])


def random_pixels(shape, seed=0) -> np.ndarray:
    """Whole-number pixels, as an 8-bit image gives Core ML."""
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.float32)
