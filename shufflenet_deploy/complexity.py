"""Parameter, multiply-add and memory-access counts, per layer and per unit.

MFLOPs follow the ShuffleNet papers: multiply-adds of convolutions and the
classifier at the given input size (BatchNorm is folded at inference time and
ReLU, pooling, adds and the shuffle are not counted).  Memory access cost
(MAC) follows the V2 paper's definition: elements read and written by a layer,
input + output + weights, e.g. hw(c1 + c2) + c1*c2 for a 1x1 convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str
    params: int
    macs: int  # multiply-adds
    memory_access: int  # elements, input + output + weights


@dataclass(frozen=True)
class UnitSummary:
    name: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


def conv_kind(conv: nn.Conv2d) -> str:
    if conv.groups == conv.in_channels == conv.out_channels and conv.groups > 1:
        return "depthwise_conv"
    if conv.kernel_size == (1, 1):
        return "group_conv1x1" if conv.groups > 1 else "conv1x1"
    return "conv"


def _layer_cost(name: str, module: nn.Module, inputs: tuple, output: torch.Tensor) -> LayerCost | None:
    params = sum(p.numel() for p in module.parameters(recurse=False))
    in_elems, out_elems = inputs[0][:1].numel(), output[:1].numel()  # per image
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        macs = out_elems * (module.in_channels // module.groups) * kh * kw
        kind = conv_kind(module)
    elif isinstance(module, nn.Linear):
        macs, kind = module.in_features * module.out_features, "linear"
    else:
        return None
    return LayerCost(name, kind, params, macs, in_elems + out_elems + module.weight.numel())


@torch.no_grad()
def layer_costs(model: nn.Module, img_size: int = 224) -> list[LayerCost]:
    """Costs of every conv and linear layer for one image of ``img_size`` x ``img_size``."""
    costs: list[LayerCost] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            def hook(mod, inputs, output, name=name):
                costs.append(_layer_cost(name, mod, inputs, output))
            hooks.append(module.register_forward_hook(hook))
    try:
        _run_once(model, img_size)
    finally:
        for handle in hooks:
            handle.remove()
    return costs


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_mflops(model: nn.Module, img_size: int = 224) -> float:
    return sum(c.macs for c in layer_costs(model, img_size)) / 1e6


@torch.no_grad()
def unit_summaries(model: nn.Module, img_size: int = 224) -> list[UnitSummary]:
    """One row per network unit (stem, each block, head), from the model's ``units()``."""
    costs = layer_costs(model, img_size)
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        module.register_forward_hook(lambda m, i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
        for name, module in model.units()
    ]
    try:
        _run_once(model, img_size)
    finally:
        for handle in hooks:
            handle.remove()
    rows = []
    for name, module in model.units():
        macs = sum(c.macs for c in costs if c.name == name or c.name.startswith(name + "."))
        rows.append(UnitSummary(name, shapes[name], count_params(module), macs))
    return rows


def _run_once(model: nn.Module, img_size: int) -> None:
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 3, img_size, img_size))
    finally:
        model.train(was_training)
