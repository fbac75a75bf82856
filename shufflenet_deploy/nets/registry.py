"""The architecture catalogue: named entries with their metadata, filled by the family modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import unknown_name_error
from ..preprocess import InputContract
from ..weights import PretrainedWeights


@dataclass(frozen=True)
class Accuracy:
    top1: float
    top5: float | None
    source: str


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str  # "v1" or "v2"
    width: float
    groups: int | None  # V1 only
    channels: tuple[int, ...]
    build: Callable[[int], nn.Module]  # num_classes -> untrained model
    #: Measured with :mod:`shufflenet_deploy.complexity` at 224x224 and 1000 classes (tests re-measure).
    params: int
    mflops: float
    #: The figure the paper or the official release publishes, where one exists.
    published_mflops: float | None
    #: Downloadable weights (``--weights imagenet``), or None.
    pretrained: PretrainedWeights | None
    #: Where trained weights exist that cannot be fetched automatically.
    manual_weights: str | None
    reference: Accuracy | None
    #: Input contract of the arch's trained weights; random weights use it too.
    contract: InputContract

    @property
    def width_label(self) -> str:
        return f"{self.width:.1f}x"


_REGISTRY: dict[str, ArchSpec] = {}


def register(spec: ArchSpec) -> ArchSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"architecture {spec.name} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def list_models(family: str | None = None, pretrained: bool | None = None) -> list[str]:
    """Registered names, optionally only one family or only those with (or without) downloadable weights."""
    return [
        name
        for name, spec in _REGISTRY.items()
        if (family is None or spec.family == family)
        and (pretrained is None or (spec.pretrained is not None) == pretrained)
    ]


def all_archs() -> list[ArchSpec]:
    return list(_REGISTRY.values())


def get_arch(name: str) -> ArchSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name_error("architecture", name, _REGISTRY, "run 'sdeploy list' to see all names") from None


def width_suffix(width: float) -> str:
    return "x" + f"{width:.1f}".replace(".", "_")


def arch_to_dict(spec: ArchSpec) -> dict:
    """Everything ``sdeploy list/info --json`` reports about an arch."""
    return {
        "name": spec.name,
        "family": spec.family,
        "width": spec.width,
        "groups": spec.groups,
        "channels": list(spec.channels),
        "params": spec.params,
        "mflops": spec.mflops,
        "published_mflops": spec.published_mflops,
        "pretrained": None
        if spec.pretrained is None
        else {
            "url": spec.pretrained.url,
            "sha256_prefix": spec.pretrained.hash_prefix,
            "num_classes": spec.pretrained.num_classes,
            "dataset": spec.pretrained.dataset,
            "recipe": spec.pretrained.recipe,
        },
        "manual_weights": spec.manual_weights,
        "reference_accuracy": None
        if spec.reference is None
        else {"top1": spec.reference.top1, "top5": spec.reference.top5, "source": spec.reference.source},
        "input_contract": spec.contract.to_dict(),
    }
