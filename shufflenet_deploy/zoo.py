"""Arch name + weights choice -> a ready model and a record of exactly what was loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import SdeployError
from .manifest import MAX_CLASSES
from .labels import default_labels, imagenet_labels
from .nets import ArchSpec, get_arch, list_models
from .nets.registry import all_archs
from .preprocess import InputContract
from .weights import (
    MAX_SEED,
    RANDOM_GENERATOR_VERSION,
    Checkpoint,
    describe_mismatch,
    fetch_pretrained,
    cached_random_state_dict,
    load_state_dict_checked,
    read_checkpoint,
    state_dict_sha256,
)

#: Named weight choices; anything else is a checkpoint path.
WEIGHT_CHOICES = ("imagenet", "random", "none")


@dataclass
class WeightsInfo:
    """Provenance of a model's weights, as recorded in the export manifest."""

    kind: str  # imagenet | random | file | none
    state_sha256: str
    num_classes: int
    labels: list[str]
    contract: InputContract
    location: str | None = None  # URL or file path
    file_sha256: str | None = None
    seed: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = {
            "kind": self.kind,
            "location": self.location,
            "file_sha256": self.file_sha256,
            "state_sha256": self.state_sha256,
            "seed": self.seed,
            # Which version of sdeploy's seeded generator made them: the same seed gives other values in another.
            "generator": RANDOM_GENERATOR_VERSION if self.kind == "random" else None,
        }
        return {k: v for k, v in data.items() if v is not None}


@dataclass
class LoadedModel:
    arch: ArchSpec
    model: nn.Module
    weights: WeightsInfo


def create_model(
    name: str, weights: str | Path | None = None, num_classes: int | None = None, seed: int = 0, progress: bool = True
) -> nn.Module:
    """timm-style constructor: the model only, in eval mode.

    ``weights`` is ``None``/``"none"`` (PyTorch's default init), ``"imagenet"``,
    ``"random"`` (seeded, see :func:`weights.random_state_dict`) or a checkpoint path.
    """
    return load_model(name, weights or "none", num_classes=num_classes, seed=seed, progress=progress).model


def load_model(
    arch: str | None,
    weights: str | Path = "imagenet",
    num_classes: int | None = None,
    seed: int = 0,
    img_size: int | None = None,
    progress: bool = True,
) -> LoadedModel:
    """Build ``arch`` and fill it from ``weights``.

    ``arch`` may be None when ``weights`` is a checkpoint that names its arch
    (written by ``sdeploy finetune``) or whose shapes match exactly one arch.
    """
    if num_classes is not None and not 1 <= num_classes <= MAX_CLASSES:
        raise SdeployError(f"--num-classes must be from 1 to {MAX_CLASSES}, got {num_classes}")
    if not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise SdeployError(f"--seed must be a whole number from 0 to {MAX_SEED}, got {seed}")
    if str(weights) in WEIGHT_CHOICES:
        if arch is None:
            raise SdeployError("no architecture given: pass --arch NAME (see 'sdeploy list')")
        loaded = _load_named(get_arch(arch), str(weights), num_classes, seed, progress)
    else:
        loaded = _load_file(arch, read_checkpoint(weights), num_classes)
    loaded.model.eval()
    if img_size is not None:
        loaded.weights.contract = loaded.weights.contract.at_size(img_size)
    return loaded


def _load_named(spec: ArchSpec, kind: str, num_classes: int | None, seed: int, progress: bool) -> LoadedModel:
    if kind == "imagenet":
        return _load_pretrained(spec, num_classes, progress)
    num_classes = num_classes or 1000
    model = spec.build(num_classes)
    if kind == "random":
        model.load_state_dict(cached_random_state_dict(spec.name, model, spec.contract, seed))
    info = WeightsInfo(
        kind=kind,
        state_sha256=state_dict_sha256(model.state_dict()),
        num_classes=num_classes,
        labels=default_labels(num_classes),
        contract=spec.contract,
        seed=seed if kind == "random" else None,
    )
    return LoadedModel(spec, model, info)


def _load_pretrained(spec: ArchSpec, num_classes: int | None, progress: bool) -> LoadedModel:
    published = spec.pretrained
    if published is None:
        with_weights = ", ".join(list_models(pretrained=True))
        manual = f" ({spec.manual_weights})" if spec.manual_weights else ""
        raise SdeployError(
            f"{spec.name} has no downloadable pretrained weights{manual}; "
            f"use --weights PATH or --weights random, or an arch that has them: {with_weights}"
        )
    if num_classes not in (None, published.num_classes):
        raise SdeployError(
            f"the imagenet weights of {spec.name} have {published.num_classes} classes, not {num_classes}; "
            "drop --num-classes, or fine-tune first (sdeploy finetune) and export that checkpoint"
        )
    path = fetch_pretrained(published, progress)
    checkpoint = read_checkpoint(path)
    model = spec.build(published.num_classes)
    load_state_dict_checked(model, checkpoint.state_dict, f"{path.name} does not fit {spec.name}")
    info = WeightsInfo(
        kind="imagenet",
        state_sha256=state_dict_sha256(model.state_dict()),
        num_classes=published.num_classes,
        labels=list(imagenet_labels()),
        contract=published.contract,
        location=published.url,
        file_sha256=checkpoint.sha256,
    )
    return LoadedModel(spec, model, info)


def _load_file(arch: str | None, checkpoint: Checkpoint, num_classes: int | None) -> LoadedModel:
    spec = _arch_for_checkpoint(arch, checkpoint)
    classifier_rows = checkpoint.state_dict.get(spec.build(1).classifier_key)
    inferred = int(classifier_rows.shape[0]) if classifier_rows is not None else None
    num_classes = num_classes or inferred or 1000
    model = spec.build(num_classes)
    load_state_dict_checked(model, checkpoint.state_dict, f"{checkpoint.path} does not fit {spec.name}{_guess_hint(checkpoint, spec)}")
    labels = checkpoint.labels or default_labels(num_classes)
    if len(labels) != num_classes:
        raise SdeployError(f"{checkpoint.path} carries {len(labels)} labels for {num_classes} classes")
    info = WeightsInfo(
        kind="file",
        state_sha256=state_dict_sha256(model.state_dict()),
        num_classes=num_classes,
        labels=labels,
        contract=checkpoint.contract or spec.contract,
        location=str(checkpoint.path),
        file_sha256=checkpoint.sha256,
        extra=checkpoint.extra,
    )
    return LoadedModel(spec, model, info)


def _arch_for_checkpoint(arch: str | None, checkpoint: Checkpoint) -> ArchSpec:
    if arch is not None:
        spec = get_arch(arch)
        if checkpoint.arch and checkpoint.arch != spec.name:
            raise SdeployError(
                f"{checkpoint.path} was trained as {checkpoint.arch}, not {spec.name}; "
                f"drop --arch or pass --arch {checkpoint.arch}"
            )
        return spec
    if checkpoint.arch:
        return get_arch(checkpoint.arch)
    matches = matching_archs(checkpoint.state_dict)
    if len(matches) == 1:
        return matches[0]
    raise SdeployError(f"{checkpoint.path} does not say which architecture it is for; pass --arch NAME")


def matching_archs(state_dict: dict[str, torch.Tensor]) -> list[ArchSpec]:
    """Archs whose keys and shapes (apart from the class count) equal the checkpoint's."""
    found = []
    for spec in all_archs():
        with torch.device("meta"):
            model = spec.build(1)
        expected = model.state_dict()
        classifier = model.classifier_key
        rows = state_dict.get(classifier)
        if rows is not None and rows.ndim == 2:
            expected = {**expected, classifier: torch.empty(rows.shape[0], expected[classifier].shape[1], device="meta")}
            bias = classifier.replace("weight", "bias")
            if bias in expected:
                expected[bias] = torch.empty(rows.shape[0], device="meta")
        if not describe_mismatch(_without_counters(expected), _without_counters(state_dict)):
            found.append(spec)
    return found


def _without_counters(state_dict: dict) -> dict:
    return {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}


def _guess_hint(checkpoint: Checkpoint, requested: ArchSpec) -> str:
    matches = [s.name for s in matching_archs(checkpoint.state_dict) if s is not requested]
    return f" (it fits {', '.join(matches)})" if matches else ""
