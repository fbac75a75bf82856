"""What an artifact takes and returns: normalised float tensors (the default), or 8-bit pixels with the input
contract inside the graph (``--embed-preprocess``); NCHW or NHWC (``--layout``); logits or probabilities
(``--softmax``).

:class:`Adapter` wraps the network so every exporter sees one plain module;
:func:`to_model_input` turns the normalised batches that verify, bench and
calibration work with into what such an artifact takes, so every runtime is
still fed the very same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .preprocess import InputContract, denormalize

TENSOR, PIXELS = "tensor", "pixels"
NCHW, NHWC = "NCHW", "NHWC"
LOGITS, PROBABILITIES = "logits", "probabilities"


def main_output(record: dict) -> dict:
    """The output every runtime reads: ``logits`` where an artifact has it (Core ML classifiers), else its first."""
    outputs = record["outputs"]
    return next((o for o in outputs if o["name"] == LOGITS), outputs[0])


@dataclass(frozen=True)
class ModelIO:
    kind: str = TENSOR  # tensor: normalised float32; pixels: uint8 RGB, normalised inside the model
    layout: str = NCHW
    probabilities: bool = False  # softmax inside the model

    @classmethod
    def from_options(cls, options) -> ModelIO:
        kind = PIXELS if options.embed_preprocess else TENSOR
        default_layout = NHWC if kind == PIXELS else NCHW
        layout = options.layout.upper() if options.layout else default_layout
        return cls(kind, layout, options.softmax)

    @classmethod
    def from_record(cls, record: dict) -> ModelIO:
        spec = record["inputs"][0]
        return cls(spec.get("kind", TENSOR), spec.get("layout") or NCHW, main_output(record).get("kind") == PROBABILITIES)

    @property
    def plain(self) -> bool:
        return self == ModelIO()

    @property
    def dtype(self) -> str:
        return "uint8" if self.kind == PIXELS else "float32"

    def variant_parts(self) -> list[str]:
        """Key and file-name parts that set this I/O apart from the default, e.g. ``u8``, ``nchw``, ``softmax``."""
        default_layout = NHWC if self.kind == PIXELS else NCHW
        return [part for part in ("u8" if self.kind == PIXELS else "",
                                  self.layout.lower() if self.layout != default_layout else "",
                                  "softmax" if self.probabilities else "") if part]  # fmt: skip

    @property
    def output_kind(self) -> str:
        return PROBABILITIES if self.probabilities else LOGITS

    @property
    def output_name(self) -> str:
        return self.output_kind

    def shape(self, batch: int | str, size: int) -> tuple:
        return (batch, size, size, 3) if self.layout == NHWC else (batch, 3, size, size)

    def example(self, batch: int, size: int) -> Tensor:
        dtype = torch.uint8 if self.kind == PIXELS else torch.float32
        return torch.zeros(self.shape(batch, size), dtype=dtype)


class Adapter(nn.Module):
    """The network behind the artifact's I/O: pixels to normalised input, layout, softmax."""

    def __init__(self, network: nn.Module, contract: InputContract, io: ModelIO):
        super().__init__()
        self.network, self.io = network, io
        self.bgr = contract.color_order == "BGR"  # pixels always arrive as RGB
        scale = torch.tensor(contract.scale, dtype=torch.float32)
        mean = torch.tensor(contract.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(contract.std, dtype=torch.float32).view(1, 3, 1, 1)
        # (pixel * scale - mean) / std as one multiply-add: pixel * (scale / std) + (-mean / std)
        self.register_buffer("gain", scale / std, persistent=False)
        self.register_buffer("offset", -mean / std, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.io.layout == NHWC:
            x = x.permute(0, 3, 1, 2)
        if self.io.kind == PIXELS:
            x = x.to(torch.float32)
            if self.bgr:
                x = x.flip(1)  # RGB -> BGR for the official V1 contract
            x = x * self.gain + self.offset
        logits = self.network(x)
        return torch.softmax(logits, dim=1) if self.io.probabilities else logits


def adapt(network: nn.Module, contract: InputContract, io: ModelIO) -> nn.Module:
    return network if io.plain else Adapter(network, contract, io).eval()


def to_model_input(batch: np.ndarray, contract: InputContract, io: ModelIO) -> np.ndarray:
    """Normalised NCHW float32 (from 8-bit images) -> what an artifact with ``io`` takes."""
    if io.kind == PIXELS:
        pixels = np.clip(np.rint(denormalize(batch, contract)), 0, 255)
        if contract.color_order == "BGR":
            pixels = pixels[:, ::-1]
        batch = pixels.astype(np.uint8)
    if io.layout == NHWC:
        batch = batch.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(batch)
