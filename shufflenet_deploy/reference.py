"""The eager model an export was made from, rebuilt from its manifest: the reference every runtime is judged by."""

from __future__ import annotations

from pathlib import Path

from .errors import SdeployError
from .fsutil import file_sha256
from .manifest import contained_path
from .weights import RANDOM_GENERATOR_VERSION
from .zoo import load_model


def rebuild_reference(manifest: dict, export_dir: Path, weights_path: str | Path | None = None, progress: bool = True):
    """The eager model the export was made from, checked against the recorded weights hash."""
    weights = manifest["weights"]
    if weights["kind"] == "random" and weights.get("generator", 1) != RANDOM_GENERATOR_VERSION:
        raise SdeployError(f"this export's random weights come from an older sdeploy (generator {weights.get('generator', 1)}, "
                           f"now {RANDOM_GENERATOR_VERSION}), so they cannot be rebuilt to check it; re-export it")  # fmt: skip
    choice = reference_checkpoint(manifest, export_dir, weights_path) if weights["kind"] == "file" else weights["kind"]
    loaded = load_model(manifest["arch"], choice, num_classes=manifest["num_classes"], seed=weights.get("seed") or 0,
                        progress=progress)  # fmt: skip
    if loaded.weights.state_sha256 != weights["state_sha256"]:
        raise SdeployError(
            f"the {weights['kind']} weights of {manifest['arch']} rebuilt here differ from the exported ones "
            f"(state sha256 {loaded.weights.state_sha256[:12]}... vs {weights['state_sha256'][:12]}...); re-export on this machine"
        )
    return loaded.model


def reference_checkpoint(manifest: dict, export_dir: Path, weights_path: str | Path | None) -> Path:
    """The checkpoint of a ``--weights PATH`` export: ``weights_path`` if given, else the export's own copy."""
    weights = manifest["weights"]
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            raise SdeployError(f"--weights {path} is not a file")
    elif weights.get("file"):
        path = contained_path(Path(export_dir), weights["file"], "weights.file")
        if not path.is_file():
            raise SdeployError(f"the export's copy of its checkpoint ({path}) is missing; pass --weights PATH to the "
                               f"checkpoint it was exported from{_source_hint(weights)}")  # fmt: skip
    else:
        raise SdeployError(f"this export does not carry its checkpoint; pass --weights PATH to the checkpoint it was "
                           f"exported from{_source_hint(weights)}")  # fmt: skip
    if file_sha256(path) != weights["file_sha256"]:
        raise SdeployError(f"{path} is not the checkpoint this export was made from (its sha256 differs); pass "
                           f"--weights PATH to that checkpoint{_source_hint(weights)}")  # fmt: skip
    return path


def _source_hint(weights: dict) -> str:
    source = weights.get("source") or weights.get("location")
    return f" (it was {source}, sha256 {weights['file_sha256'][:12]}...)" if source else ""
