"""What every backend declares, and the interfaces its exporter and runner implement.

A backend module (``backends/<name>.py``, or a package for a large one)
defines a module-level ``BACKEND = Backend(...)``.  The record is the one
place that says what the backend is: its exporter (:class:`Target`), its
runtime (:class:`Runner`), its artifact format and file names, the pip extra
and packages it needs, its own export options, its bench variants and the
demo apps that can take its artifacts.  The CLI, the manifest, verify, bench
and bundle read everything from these records, so adding a backend is adding
one module.

A target gets an :class:`ExportContext` (the model, its input contract,
labels, metadata, options and a private staging folder), writes its files
into ``ctx.staging`` under the names :meth:`Target.file_names` promised, and
returns an :class:`Artifact`.  Moving files into place, hashing and the
manifest are the exporter's job, so a target that raises leaves nothing behind.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import MissingDependencyError, require_modules
from ..modelio import ModelIO, to_model_input
from ..preprocess import InputContract
from .options import ExportOptions, Option

if TYPE_CHECKING:
    from .calibration import Calibration


class RuntimeUnavailable(MissingDependencyError):
    """The runtime's package is not installed: reported as 'not available', never as a pass."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # "batch" marks a dynamic batch dimension
    dtype: str = "float32"
    #: tensor (normalised float), pixels (uint8 RGB, normalised inside), image (Core ML image),
    #: logits, probabilities, label
    kind: str = "tensor"
    layout: str | None = None  # NCHW or NHWC for image-shaped inputs

    def to_dict(self) -> dict:
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {k: v for k, v in data.items() if v is not None}


@dataclass
class Artifact:
    """What a target produced, before the exporter moves, hashes and records it."""

    key: str  # manifest key: target name plus the variant, e.g. "onnx-fp16"
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

    def metadata_json(self) -> str:
        return json.dumps(self.metadata, sort_keys=True)

    @property
    def io(self) -> ModelIO:
        return ModelIO.from_options(self.options)

    def example(self, batch: int) -> torch.Tensor:
        """An input to trace or export with, of the artifact's dtype and layout."""
        return self.io.example(batch, self.img_size)

    def input_spec(self, name: str, batch: int | str) -> TensorSpec:
        io = self.io
        return TensorSpec(name, io.shape(batch, self.img_size), io.dtype, io.kind, io.layout)

    def output_spec(self, name: str, batch: int | str) -> TensorSpec:
        return TensorSpec(name, (batch, self.num_classes), "float32", self.io.output_kind)


class Target(abc.ABC):
    """One export format. Subclasses set the class attributes and implement :meth:`export`."""

    name: ClassVar[str]
    #: File name endings of the artifact's files, main file first: ``<arch>[-variant]<suffix>``.
    suffixes: ClassVar[tuple[str, ...]]
    #: Whether the artifact is a folder (an .mlpackage), not a file.
    directory_artifact: ClassVar[bool] = False
    #: Why this target cannot export int8 (None: it can); with --quantize int8 it is skipped with this note.
    int8_unavailable: ClassVar[str | None] = None
    #: Whether its int8 export quantizes activations, which needs calibration images (--calib).
    int8_calibrates: ClassVar[bool] = False
    #: Why it cannot take 8-bit pixels, NHWC or a softmax output (None: it can, through modelio.Adapter).
    io_unavailable: ClassVar[str | None] = None

    def unavailable(self, options: ExportOptions) -> str | None:
        """Why this target cannot honour ``options`` (it is then skipped with this note), or None."""
        if options.int8 and self.int8_unavailable:
            return self.int8_unavailable
        if not ModelIO.from_options(options).plain:
            return self.io_reason(options)
        return None

    def io_reason(self, options: ExportOptions) -> str | None:
        return self.io_unavailable

    def variant(self, options: ExportOptions) -> str:
        """What sets this export apart from the default one, e.g. ``fp16``: the key and file-name suffix."""
        return standard_variant(options)

    def key(self, options: ExportOptions) -> str:
        variant = self.variant(options)
        return f"{self.name}-{variant}" if variant else self.name

    def file_names(self, arch: str, options: ExportOptions) -> list[str]:
        variant = self.variant(options)
        stem = f"{arch}-{variant}" if variant else arch
        return [stem + suffix for suffix in self.suffixes]

    @abc.abstractmethod
    def export(self, ctx: ExportContext) -> Artifact:
        """Write the artifact's files into ``ctx.staging`` (named by :meth:`file_names`) and describe them."""


def standard_variant(options: ExportOptions) -> str:
    """I/O parts (``u8``, ``nchw``, ``softmax``), then ``fp16`` or ``int8``; empty for the default export."""
    precision = "int8" if options.int8 else "fp16" if options.half else ""
    return "-".join([*ModelIO.from_options(options).variant_parts(), *([precision] if precision else [])])


def example_batch(options: ExportOptions) -> int:
    """Batch size to trace with: torch.export specialises a batch of 1, so a dynamic batch traces with 2."""
    return max(options.batch, 2) if options.dynamic_batch else options.batch


def batch_dim(options: ExportOptions) -> int | str:
    return "batch" if options.dynamic_batch else options.batch


class Runner(abc.ABC):
    """Load an artifact, run a float32 NCHW batch, return logits.

    Callers always pass the *normalised* network input (what ``preprocess``
    produces).  A runner whose artifact takes something else (Core ML's image
    input takes pixels) converts with the manifest's input contract, so every
    runtime is compared on identical inputs.
    """

    #: Name used on the command line (``--runtime``) and in reports.
    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str] = ""

    def __init__(self, export_dir: Path, record: dict, contract: InputContract, threads: int | None = None):
        self.export_dir = Path(export_dir)
        self.record = record
        self.contract = contract
        self.threads = threads
        self.path = self.export_dir / record["path"]
        self.load()

    @classmethod
    def check_available(cls) -> None:
        require_modules(cls.requires, cls.extra, f"the {cls.name} runtime", RuntimeUnavailable)

    @classmethod
    def is_interpreter(cls) -> bool:
        """True where this machine runs a stand-in interpreter, not the real runtime (its speed means little)."""
        return False

    @classmethod
    def known_problem(cls, record: dict, manifest: dict) -> str | None:
        """A bug of this runtime's installed version that makes it compute this artifact wrongly, or None.

        verify reports such a combination as ``unsupported`` with the reason instead of failing the export
        for a runtime's fault; asked for by name (``--runtime``), it still counts as not verified.
        """
        return None

    @classmethod
    def platform_note(cls) -> str | None:
        """What a user should know about this runtime on this machine (``sdeploy doctor``)."""
        return None

    @abc.abstractmethod
    def load(self) -> None:
        """Open the artifact at ``self.path``."""

    @abc.abstractmethod
    def run_fixed(self, batch: np.ndarray) -> np.ndarray:
        """Run exactly ``self.batch_size`` inputs (or any number if dynamic); return (N, classes) float32."""

    @property
    def description(self) -> str:
        """What actually ran, e.g. 'onnxruntime 1.32 CPUExecutionProvider, 2 threads'."""
        return self.name

    @property
    def batch_size(self) -> int | None:
        """The artifact's fixed batch size, or None when it accepts any batch."""
        dim = self.record["inputs"][0]["shape"][0]
        return None if isinstance(dim, str) else int(dim)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Outputs for normalised inputs, converted to the artifact's input, chunked (and padded) to its batch size."""
        batch = to_model_input(np.ascontiguousarray(batch, dtype=np.float32), self.contract, ModelIO.from_record(self.record))
        size = self.batch_size
        if size is None or len(batch) == size:
            return np.asarray(self.run_fixed(batch), dtype=np.float32)
        outputs = []
        for start in range(0, len(batch), size):
            chunk = batch[start : start + size]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)]) if len(chunk) < size else chunk
            outputs.append(np.asarray(self.run_fixed(padded), dtype=np.float32)[: len(chunk)])
        return np.concatenate(outputs)


@dataclass(frozen=True)
class AppBinding:
    """How a demo app takes this backend's artifacts."""

    model_file: str  # fixed name inside the app, so the app's code never changes with the arch
    #: Export options ``sdeploy bundle --arch`` adds for this app (e.g. an older bytecode version).
    export_options: dict = field(default_factory=dict)
    #: The app's engine when ``--target`` is not given.
    default: bool = False
    #: Raises SdeployError with the fix when an artifact record cannot run in the app.
    check: Callable[[dict], None] | None = None


@dataclass(frozen=True)
class Backend:
    """One backend, declared once. ``target`` is None for a second runtime of another backend's format."""

    name: str  # the --target name, or the --runtime name of a runner-only record
    summary: str
    format: str  # the manifest's artifact format
    runner: type[Runner] | None
    target: Target | None = None
    files: str = ""  # how its files are named, for help and docs
    extra: str = ""  # pip install "shufflenet-deploy[<extra>]"
    packages: tuple[str, ...] = ()  # pip distributions whose versions the manifest records
    modules: tuple[str, ...] = ()  # importable modules the exporter needs
    loggers: tuple[str, ...] = ()  # the converter's loggers, quieted during an export
    options: tuple[Option, ...] = ()  # export options of this backend only
    #: precision -> export options that make that variant (``sdeploy bench --precision``); absent: not offered.
    bench_variants: dict[str, dict] = field(default_factory=lambda: {"fp32": {}})
    apps: dict[str, AppBinding] = field(default_factory=dict)
    color: str = "tab:gray"  # its colour in bench plots
    order: int = 100  # position in lists and help
    #: Tolerances that differ from verify's defaults for a precision, e.g. {"fp16": Tolerance(...)}.
    tolerances: dict = field(default_factory=dict)
    #: Checked by default when verify runs the format (a second, independent runtime).
    crosscheck: bool = False
    #: Export options that make a tensor-in, tensor-out artifact of a truncated network (``verify --locate``).
    locate_options: dict = field(default_factory=dict)

    @property
    def runtime(self) -> str | None:
        return self.runner.name if self.runner else None

    def check_export_dependencies(self) -> None:
        require_modules(self.modules, self.extra, f"--target {self.name}")


def crosscheck_backend(runner: type[Runner], fmt: str, summary: str, package: str, color: str,
                       order: int) -> Backend:  # fmt: skip
    """The record of a second, independent runtime for ``fmt`` artifacts; verify runs it by default when installed."""
    return Backend(name=runner.name, summary=summary, format=fmt, runner=runner, extra="crosscheck",
                   packages=(package,), crosscheck=True, color=color, order=order)  # fmt: skip
