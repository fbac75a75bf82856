"""How close an artifact must come to eager PyTorch: fixed rules for fp32 and int8, a measured floor for fp16.

fp32 artifacts compute what eager computes up to summation order, so a
small share of the logit range is plenty.  fp16 error is another matter: it
depends on the network, its weights and the inputs, so a fixed share either
lets real bugs through or fails sound artifacts (both happened).  Instead,
verify measures the *fp16 noise floor* of the very model and inputs it
checks: the eager network run with its weights and every layer's output
rounded to fp16 (computing in fp32 in between), compared with the fp32 run.
An fp16 artifact may then be off by a fixed multiple of that floor (a backend
whose runtime computes in fp16 throughout declares larger ones): runtimes
round at more points than the emulation (fp16 arithmetic, fused ops), but a
converter bug (a dropped layer, swapped channels, a mis-scaled weight)
shows up as error many times the floor.  The multiples come from measuring
every fp16 artifact of every V2 arch at 224 over five seeds (the README's
figures).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

#: Never looser than this, whatever the floor: a model whose outputs fp16 rounding alone moves further
#: (overflow, or a network too sensitive) is not safe to run in fp16, and its fp16 artifacts fail.
FP16_MAX_REL_ERROR, FP16_MIN_COSINE = 0.05, 0.99


@dataclass(frozen=True)
class Tolerance:
    """Pass thresholds: ``max_rel_error`` times the reference's logit range, and a cosine floor."""

    max_rel_error: float
    min_cosine: float


DEFAULT_TOLERANCES = {
    "fp32": Tolerance(max_rel_error=1e-4, min_cosine=0.99999),
    # Used only when no fp16 floor was measured (an override, or nothing to measure it on).
    "fp16": Tolerance(max_rel_error=3e-2, min_cosine=0.99),
    "int8": Tolerance(max_rel_error=0.25, min_cosine=0.95),
}


@dataclass(frozen=True)
class Fp16Rule:
    """An fp16 artifact may be off by these multiples of the emulated fp16 error (max abs, and 1 - cosine).

    A backend whose runtime rounds at many more points than the emulation (fp16 accumulation in every
    GEMM) declares its own, measured, in its record's ``tolerances["fp16"]``.
    """

    abs_multiple: float = 4.0
    cosine_multiple: float = 8.0


FP16_RULE = Fp16Rule()


@dataclass(frozen=True)
class Fp16Floor:
    """What rounding weights and activations to fp16 alone does to these logits."""

    max_abs_error: float
    cosine_gap: float  # 1 - the lowest per-input cosine similarity

    def to_dict(self) -> dict:
        return {"max_abs_error": self.max_abs_error, "cosine_gap": self.cosine_gap}


@dataclass(frozen=True)
class Limits:
    """The thresholds applied to one artifact, and how they were set."""

    atol: float
    min_cosine: float
    rule: str


def _fp16_limits(floor: Fp16Floor, spread: float, atol: float | None, multiples: Fp16Rule) -> Limits:
    derived = multiples.abs_multiple * floor.max_abs_error
    widest_gap = 1 - FP16_MIN_COSINE
    capped = derived > FP16_MAX_REL_ERROR * spread or floor.cosine_gap * multiples.cosine_multiple > widest_gap
    derived = min(max(derived, DEFAULT_TOLERANCES["fp32"].max_rel_error * spread), FP16_MAX_REL_ERROR * spread)
    min_cosine = max(1.0 - multiples.cosine_multiple * max(floor.cosine_gap, 1e-7), FP16_MIN_COSINE)
    rule = (f"fp16: {multiples.abs_multiple:g}x the measured fp16 floor ({floor.max_abs_error:.3g} abs), "
            f"{multiples.cosine_multiple:g}x its cosine gap ({floor.cosine_gap:.2g})")  # fmt: skip
    if capped:
        rule += (f", capped at {FP16_MAX_REL_ERROR:g} of the range and cosine {FP16_MIN_COSINE}: fp16 rounding alone "
                 "moves this model's outputs that far, so it is not safe in fp16 on these inputs")  # fmt: skip
    return Limits(atol if atol is not None else derived, min_cosine, rule)


def fp16_rule(record: dict) -> Fp16Rule:
    """The multiples of the fp16 floor that an fp16 artifact of this record's format may reach."""
    from .backends import format_backend

    own = format_backend(record["format"]).tolerances.get("fp16")
    return own if isinstance(own, Fp16Rule) else FP16_RULE


def fp16_floor(model: nn.Module, inputs: np.ndarray, reference: np.ndarray, probabilities: bool = False) -> Fp16Floor:
    """The fp16 floor on these inputs; ``reference`` is the fp32 output (softmaxed when ``probabilities``)."""
    emulated = _fp16_storage_copy(model)
    with torch.no_grad():
        outputs = emulated(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))).numpy().astype(np.float64)
    outputs = outputs.reshape(len(outputs), -1)
    outputs = _fp16_softmax(outputs) if probabilities else outputs
    expected = reference.astype(np.float64)
    norms = np.linalg.norm(outputs, axis=1) * np.linalg.norm(expected, axis=1) + 1e-30
    cosine = float(((outputs * expected).sum(axis=1) / norms).min())
    return Fp16Floor(float(np.abs(outputs - expected).max()), max(0.0, 1.0 - cosine))


def _fp16_softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax as an fp16 runtime computes it: exponentials and the sum in fp16."""
    shifted = (logits - logits.max(axis=1, keepdims=True)).astype(np.float16)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True, dtype=np.float16)).astype(np.float64)


def _fp16_storage_copy(model: nn.Module) -> nn.Module:
    """The network with fp16 weights whose every layer hands on fp16-rounded outputs (arithmetic stays fp32).

    BatchNorm is folded into the convolution before it first, as every converter does: a convolution's raw
    output never exists in an fp16 artifact, and rounding it would overflow where no runtime does.
    """
    copied = fold_batchnorm(copy.deepcopy(model).eval())
    with torch.no_grad():
        for tensor in copied.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    for module in copied.modules():
        if not list(module.children()):
            module.register_forward_hook(lambda _m, _i, out: out.half().float() if torch.is_tensor(out) else out)
    return copied


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Each Conv2d + BatchNorm2d pair of every Sequential as one convolution, in place (converters do the same)."""
    for module in list(model.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (name, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
    return model


def limits(record: dict, reference: np.ndarray, floor: Fp16Floor | None, atol: float | None = None) -> Limits:
    """The atol and cosine floor for an artifact record, on these reference logits."""
    from .backends import format_backend

    precision = record["precision"]
    spread = float(reference.max() - reference.min()) or 1.0
    own = format_backend(record["format"]).tolerances.get(precision)
    if precision == "fp16" and floor is not None and (own is None or isinstance(own, Fp16Rule)):
        return _fp16_limits(floor, spread, atol, own or FP16_RULE)
    # An Fp16Rule needs a floor; without one the fixed fp16 tolerance applies, as for every format.
    fixed = own if isinstance(own, Tolerance) else None
    tolerance = fixed or DEFAULT_TOLERANCES.get(precision, DEFAULT_TOLERANCES["fp32"])
    rule = f"{precision}: {tolerance.max_rel_error:g} of the logit range, cosine {tolerance.min_cosine}"
    return Limits(atol if atol is not None else tolerance.max_rel_error * spread, tolerance.min_cosine, rule)
