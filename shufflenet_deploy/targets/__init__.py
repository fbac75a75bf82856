"""Export targets: one module per format behind :class:`base.Target`.

Adding a format means adding a module with a ``Target`` subclass and one line in ``TARGETS``.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import SdeployError, unknown_name_error
from .base import Artifact, ExportContext, ExportOptions, Target, TensorSpec
from .coreml import CoreMLTarget
from .ncnn import NcnnTarget
from .onnx import OnnxTarget
from .torchscript import TorchScriptTarget

TARGETS: dict[str, Target] = {t.name: t for t in (OnnxTarget(), TorchScriptTarget(), CoreMLTarget(), NcnnTarget())}


def parse_targets(values: str | Iterable[str]) -> list[str]:
    """Target names from repeated and/or comma-separated values; ``all`` means every target."""
    if isinstance(values, str):
        values = [values]
    names: list[str] = []
    for value in values:
        for name in (part.strip().lower() for part in value.split(",")):
            if not name:
                continue
            if name == "all":
                names.extend(TARGETS)
            elif name in TARGETS:
                names.append(name)
            else:
                raise unknown_name_error("target", name, [*TARGETS, "all"], f"choose from {', '.join([*TARGETS, 'all'])}")
    if not names:
        raise SdeployError(f"no target given: pass --target with one of {', '.join([*TARGETS, 'all'])}")
    return list(dict.fromkeys(names))  # keep order, drop repeats


__all__ = ["TARGETS", "Artifact", "ExportContext", "ExportOptions", "Target", "TensorSpec", "parse_targets"]
