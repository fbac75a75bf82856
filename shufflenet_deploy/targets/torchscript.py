"""TorchScript Mobile: a traced, optimised module saved for the lite interpreter (.ptl).

int8 is not offered: PyTorch's int8 path for TorchScript (``torch.ao.quantization``
eager/FX mode) is deprecated, and whether its quantized ops load in
pytorch_android_lite 1.13 (the Android demo's runtime) cannot be checked here.
"""

from __future__ import annotations

import torch

from ..errors import SdeployError
from .base import Artifact, ExportContext, Target, TensorSpec, batch_dim

#: Name of the metadata entry in ``_extra_files`` (read with LiteModuleLoader.load(path, extraFiles)).
METADATA_FILE = "metadata.json"
#: pytorch_android_lite 1.13.1, the last Android release, reads bytecode up to this version.
ANDROID_LITE_1_13_BYTECODE = 8


class TorchScriptTarget(Target):
    name = "torchscript"
    requires = ("torch.jit",)
    extra = ""
    description = "TorchScript Mobile for the lite interpreter (.ptl)"
    int8_unavailable = (
        "torchscript int8 is not offered (torch.ao.quantization is deprecated and its quantized ops are "
        "untested on pytorch_android_lite); export torchscript without --quantize for fp32"
    )

    def export(self, ctx: ExportContext) -> Artifact:
        example = torch.zeros(ctx.options.batch, 3, ctx.img_size, ctx.img_size)
        with torch.no_grad():
            traced = torch.jit.trace(ctx.model.eval(), example)
        optimized, optimizer = _optimize(traced)
        name = ctx.file_name(".ptl")
        path = ctx.staging / name
        optimized._save_for_lite_interpreter(str(path), _extra_files={METADATA_FILE: ctx.metadata_json()})
        bytecode = _backport(path, ctx.options.bytecode_version)

        notes = []
        if ctx.options.half:
            notes.append("--half ignored for torchscript: the lite interpreter has no fp16 CPU kernels, exported fp32")
        batch = batch_dim(ctx.options)
        return Artifact(
            key="torchscript",
            target=self.name,
            format="torchscript-lite",
            files=[name],
            precision="fp32",
            inputs=[TensorSpec("input", (batch, 3, ctx.img_size, ctx.img_size))],
            outputs=[TensorSpec("logits", (batch, ctx.num_classes))],
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


def _backport(path, requested: int | None) -> int:
    """Rewrite ``path`` at an older bytecode version if asked; return the version the file has."""
    from torch.jit.mobile import _backport_for_mobile, _get_model_bytecode_version

    current = _get_model_bytecode_version(str(path))
    if requested is None or requested == current:
        return current
    if requested > current:
        raise SdeployError(f"--bytecode-version {requested} is newer than this torch writes ({current}); use {current} or less")
    older = path.with_name(path.name + ".backport")
    if not _backport_for_mobile(str(path), str(older), requested):
        raise SdeployError(f"torch could not backport the model to bytecode version {requested} (it writes {current})")
    older.replace(path)
    return _get_model_bytecode_version(str(path))
