"""TorchScript Mobile: a traced, optimised module saved for the lite interpreter (.ptl), and that interpreter.

int8 is not offered: PyTorch's int8 path for TorchScript (``torch.ao.quantization``
eager/FX mode) is deprecated, and whether its quantized ops load in
pytorch_android_lite 1.13 (the Android demo's runtime) cannot be checked here.
"""

from __future__ import annotations

import io

import numpy as np
import torch

from ..errors import SdeployError
from ..modelio import ModelIO
from ..sysutil import torch_threads
from .base import AppBinding, Artifact, Backend, ExportContext, Runner, Target, batch_dim
from .options import Option

#: Name of the metadata entry in ``_extra_files`` (read with LiteModuleLoader.load(path, extraFiles)).
METADATA_FILE = "metadata.json"
#: pytorch_android_lite 1.13.1 and 2.1.0, the Android demo's alternative engine, read bytecode up to this version.
ANDROID_LITE_BYTECODE = 8


class TorchScriptTarget(Target):
    name = "torchscript"
    suffixes = (".ptl",)
    int8_unavailable = (
        "torchscript int8 is not offered (torch.ao.quantization is deprecated and its quantized ops are "
        "untested on pytorch_android_lite); export torchscript without --quantize for fp32"
    )

    def variant(self, options) -> str:
        # Always fp32 (the lite interpreter has no fp16 kernels, int8 is not offered): only the I/O parts.
        return "-".join(ModelIO.from_options(options).variant_parts())

    def export(self, ctx: ExportContext) -> Artifact:
        example = ctx.example(ctx.options.batch)
        with torch.no_grad():
            traced = torch.jit.trace(ctx.model.eval(), example)
        optimized, optimizer = _optimize(traced)
        name = self.file_names(ctx.arch, ctx.options)[0]
        # Saved to memory, then written by Python: torch's own file writer aborts the process on a full disk.
        data = optimized._save_to_buffer_for_lite_interpreter(_extra_files={METADATA_FILE: ctx.metadata_json()})
        data, bytecode = _backport(data, ctx.options.bytecode_version)
        (ctx.staging / name).write_bytes(data)

        notes = []
        if ctx.options.half:
            notes.append("--half ignored for torchscript: the lite interpreter has no fp16 CPU kernels, exported fp32")
        batch = batch_dim(ctx.options)
        return Artifact(
            key=self.key(ctx.options),
            target=self.name,
            format="torchscript-lite",
            files=[name],
            precision="fp32",
            inputs=[ctx.input_spec("input", batch)],
            outputs=[ctx.output_spec(ctx.io.output_name, batch)],
            exporter=f"torch.jit.trace + {optimizer} + _save_for_lite_interpreter",
            details={
                "mobile_optimizer": optimizer,
                "batchnorm_folded": "batch_norm" not in str(optimized.graph),
                "bytecode_version": bytecode,
                "metadata_extra_file": METADATA_FILE,
                "dynamic_batch": ctx.options.dynamic_batch,
            },
            notes=notes,
        )


def _optimize(traced: torch.jit.ScriptModule) -> tuple[torch.jit.ScriptModule, str]:
    """``optimize_for_mobile`` where the build has XNNPACK, else ``jit.freeze`` (which folds BatchNorm)."""
    from torch.utils.mobile_optimizer import optimize_for_mobile

    try:
        return optimize_for_mobile(traced), "optimize_for_mobile"
    except RuntimeError as exc:
        if "XNNPACK" not in str(exc):
            raise
    return torch.jit.freeze(traced.eval()), "jit.freeze (optimize_for_mobile unavailable: torch built without XNNPACK)"


def _backport(data: bytes, requested: int | None) -> tuple[bytes, int]:
    """The saved model at an older bytecode version if asked, and the version it has."""
    from torch.jit.mobile import _backport_for_mobile_to_buffer, _get_model_bytecode_version

    current = _get_model_bytecode_version(io.BytesIO(data))
    if requested is None or requested == current:
        return data, current
    if requested > current:
        raise SdeployError(f"--bytecode-version {requested} is newer than this torch writes ({current}); use {current} or less")
    older = _backport_for_mobile_to_buffer(io.BytesIO(data), requested)
    if not older:
        raise SdeployError(f"torch could not backport the model to bytecode version {requested} (it writes {current})")
    return bytes(older), _get_model_bytecode_version(io.BytesIO(bytes(older)))


def _check_bytecode_option(version: int | None, options) -> None:
    if version is not None and version < 4:
        raise SdeployError(f"--bytecode-version must be 4 or more, got {version}")


def _check_android_lite(record: dict) -> None:
    version = record["details"].get("bytecode_version")
    if version is None or version > ANDROID_LITE_BYTECODE:
        raise SdeployError(
            f"the .ptl has bytecode version {version}, newer than pytorch_android_lite reads ({ANDROID_LITE_BYTECODE}); "
            f"re-export with --bytecode-version {ANDROID_LITE_BYTECODE}"
        )


class LiteInterpreterRunner(Runner):
    """PyTorch's lite interpreter (``torch.jit.mobile``), the runtime of pytorch_android_lite."""

    name = "torchscript"
    requires = ("torch.jit.mobile",)

    def load(self) -> None:
        from torch.jit.mobile import _load_for_lite_interpreter

        self.module = _load_for_lite_interpreter(str(self.path))

    def run_fixed(self, batch: np.ndarray) -> np.ndarray:
        with torch_threads(self.threads or None), torch.no_grad():
            return self.module(torch.from_numpy(batch)).numpy()

    @property
    def description(self) -> str:
        return f"torch {torch.__version__} lite interpreter, {self.threads or torch.get_num_threads()} threads"


BACKEND = Backend(
    name="torchscript",
    summary="TorchScript Mobile (.ptl) for PyTorch's lite interpreter (deprecated in favour of ExecuTorch)",
    format="torchscript-lite",
    target=TorchScriptTarget(),
    runner=LiteInterpreterRunner,
    files="<arch>.ptl",
    options=(
        Option("bytecode_version", int, None, f"Backport the .ptl to this lite-interpreter bytecode version "
               f"({ANDROID_LITE_BYTECODE} for pytorch_android_lite 1.13/2.1).", check=_check_bytecode_option),
    ),  # fmt: skip
    apps={"android": AppBinding("model.ptl", export_options={"bytecode_version": ANDROID_LITE_BYTECODE},
                                check=_check_android_lite)},  # fmt: skip
    color="tab:orange",
    order=20,
)
