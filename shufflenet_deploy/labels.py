"""Class labels: the bundled ImageNet names, user label files, and placeholders."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import SdeployError

IMAGENET_NUM_CLASSES = 1000


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    text = resources.files("shufflenet_deploy").joinpath("data/imagenet_classes.txt").read_text("utf-8")
    return tuple(text.splitlines())


def placeholder_labels(num_classes: int) -> list[str]:
    return [f"class_{i}" for i in range(num_classes)]


def default_labels(num_classes: int) -> list[str]:
    """ImageNet names for 1000-way heads, ``class_N`` otherwise."""
    if num_classes == IMAGENET_NUM_CLASSES:
        return list(imagenet_labels())
    return placeholder_labels(num_classes)


def labels_text(labels) -> str:
    """The labels file's text, one label per line (parse_labels reads it back)."""
    return "\n".join(labels) + "\n"


def parse_labels(text: str) -> list[str]:
    """One label per line, surrounding spaces dropped; blank lines at the end are ignored."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def read_labels_file(path: str | Path, num_classes: int) -> list[str]:
    """One label per line; blank trailing lines are ignored, the count must equal ``num_classes``."""
    path = Path(path)
    try:
        labels = parse_labels(path.read_text("utf-8"))
    except FileNotFoundError:
        raise SdeployError(f"labels file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SdeployError(f"cannot read labels file {path}: {exc}") from None
    if len(labels) != num_classes:
        raise SdeployError(
            f"labels file {path} has {len(labels)} lines but the model has {num_classes} classes; "
            f"give one label per line, or pass --num-classes {len(labels)}"
        )
    if any(not label for label in labels):
        raise SdeployError(f"labels file {path} has an empty line at line {labels.index('') + 1}")
    return labels
