"""The interface every export target implements, and the data it exchanges with the exporter.

A target gets an :class:`ExportContext` (the model, its input contract,
labels, metadata, options and a private staging folder), writes its files
into ``ctx.staging`` under their final names, and returns an
:class:`Artifact` describing them.  Moving files into place, hashing and the
manifest are the exporter's job, so a target that raises leaves nothing behind.
"""

from __future__ import annotations

import abc
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from torch import nn

from ..errors import SdeployError, require_modules
from ..preprocess import InputContract
from .quantize import DEFAULT_CALIB_SAMPLES, INT8_MIN_OPSET, QUANTIZE_CHOICES, Calibration, calibration_images

DEFAULT_OPSET = 18
CORE_ML_MIN_IOS = ("15", "16", "17", "18")


@dataclass(frozen=True)
class ExportOptions:
    """Every export option; each target reads the ones that concern it."""

    batch: int = 1
    dynamic_batch: bool = False
    half: bool = False
    opset: int = DEFAULT_OPSET
    bytecode_version: int | None = None
    precision: str = "fp16"  # Core ML compute precision
    min_ios: str = "15"
    coreml_mode: str = "classifier"  # or "tensor"
    keep_intermediate: bool = False
    author: str = "shufflenet-deploy"
    license: str | None = None  # default: from the weights' source
    quantize: str = "none"  # or "int8"
    calib: str | Path | None = None  # calibration image folder (activation-quantizing targets)
    calib_samples: int = DEFAULT_CALIB_SAMPLES

    @property
    def int8(self) -> bool:
        return self.quantize == "int8"

    def validate(self) -> None:
        if self.batch < 1:
            raise SdeployError(f"--batch must be at least 1, got {self.batch}")
        if not 9 <= self.opset <= max_onnx_opset():
            raise SdeployError(f"--opset {self.opset} is not supported: use 9 to {max_onnx_opset()} (default {DEFAULT_OPSET})")
        if self.precision not in ("fp16", "fp32"):
            raise SdeployError(f"--precision must be fp16 or fp32, got {self.precision}")
        if self.min_ios not in CORE_ML_MIN_IOS:
            raise SdeployError(f"--min-ios must be one of {', '.join(CORE_ML_MIN_IOS)} (ML Programs need iOS 15+), got {self.min_ios}")
        if self.coreml_mode not in ("classifier", "tensor"):
            raise SdeployError(f"--coreml-mode must be classifier or tensor, got {self.coreml_mode}")
        if self.bytecode_version is not None and self.bytecode_version < 4:
            raise SdeployError(f"--bytecode-version must be 4 or more, got {self.bytecode_version}")
        self._validate_quantization()

    def _validate_quantization(self) -> None:
        if self.quantize not in QUANTIZE_CHOICES:
            raise SdeployError(f"--quantize must be none or int8, got {self.quantize}")
        if self.calib_samples < 1:
            raise SdeployError(f"--calib-samples must be at least 1, got {self.calib_samples}")
        if not self.int8:
            if self.calib is not None:
                raise SdeployError("--calib is only used with --quantize int8; add --quantize int8 or drop --calib")
            return
        if self.half:
            raise SdeployError("--half and --quantize int8 exclude each other: choose fp16 or int8")
        if self.opset < INT8_MIN_OPSET:
            raise SdeployError(
                f"--quantize int8 needs --opset {INT8_MIN_OPSET} or newer (per-channel int8 weights), got {self.opset}"
            )
        if self.calib is not None:
            calibration_images(self.calib)  # fail before the model is built, not after


def max_onnx_opset() -> int:
    try:
        import onnx
    except ImportError:
        return 23
    return onnx.defs.onnx_opset_version()


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # "batch" marks a dynamic batch dimension
    dtype: str = "float32"
    kind: str = "tensor"  # tensor | image | label | probabilities

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class Artifact:
    """What a target produced, before the exporter moves, hashes and records it."""

    key: str  # manifest key: target name plus a precision/mode suffix where not the default
    target: str
    format: str
    files: list[str]  # names inside the staging folder, main file first
    precision: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    exporter: str  # the conversion path taken, in words
    details: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # shown to the user after the export
    extras: list[str] = field(default_factory=list)  # also moved into place, not part of the artifact (e.g. pnnx files)


@dataclass
class ExportContext:
    model: nn.Module
    arch: str
    contract: InputContract
    labels: list[str]
    options: ExportOptions
    metadata: dict[str, str]
    staging: Path
    calibration: Calibration | None = None  # loaded when --quantize int8 and a target calibrates

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def img_size(self) -> int:
        return self.contract.img_size

    def file_name(self, suffix: str, variant: str = "") -> str:
        """``<arch>[-variant]<suffix>``, e.g. ``v2_x0_5-fp16.onnx``."""
        return f"{self.arch}{'-' + variant if variant else ''}{suffix}"

    def metadata_json(self) -> str:
        return json.dumps(self.metadata, sort_keys=True)


class Target(abc.ABC):
    """One export format. Subclasses set the class attributes and implement :meth:`export`."""

    name: ClassVar[str]
    #: Importable modules the converter needs, and the pip extra that installs them.
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: Why this target cannot export int8 (None: it can); with --quantize int8 it is skipped with this note.
    int8_unavailable: ClassVar[str | None] = None
    #: Whether its int8 export quantizes activations, which needs calibration images (--calib).
    int8_calibrates: ClassVar[bool] = False

    def check_dependencies(self) -> None:
        require_modules(self.requires, self.extra, f"--target {self.name}")

    @abc.abstractmethod
    def export(self, ctx: ExportContext) -> Artifact:
        """Write the artifact's files into ``ctx.staging`` and describe them."""


def example_batch(options: ExportOptions) -> int:
    """Batch size to trace with: torch.export specialises a batch of 1, so a dynamic batch traces with 2."""
    return max(options.batch, 2) if options.dynamic_batch else options.batch


def batch_dim(options: ExportOptions) -> int | str:
    return "batch" if options.dynamic_batch else options.batch
