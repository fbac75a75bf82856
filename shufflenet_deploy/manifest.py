"""``<export dir>/sdeploy.json``: what was exported, from which weights, for which input contract.

``sdeploy verify``, ``sdeploy bundle`` and the demo apps read only this file,
so it is the single source of truth about an export.  Paths inside it are
relative to the export directory, so the directory can be moved or copied.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

from . import __version__
from .errors import SdeployError
from .fsutil import tree_sha256, tree_size, write_text_atomic
from .preprocess import InputContract
from .targets.base import Artifact

MANIFEST_NAME = "sdeploy.json"
LABELS_NAME = "labels.txt"
SCHEMA = "sdeploy-manifest/1"
#: Packages whose versions are recorded; a missing one is recorded as null.
TOOLS = ("torch", "numpy", "onnx", "onnxscript", "onnxsim", "onnxconverter-common", "onnxruntime",
         "coremltools", "pnnx", "ncnn")  # fmt: skip


@dataclass(frozen=True)
class ArtifactCheck:
    key: str
    problem: str | None  # None when every file exists with its recorded hash


def tool_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"sdeploy": __version__, "python": platform.python_version()}
    for tool in TOOLS:
        try:
            versions[tool] = importlib_metadata.version(tool)
        except importlib_metadata.PackageNotFoundError:
            versions[tool] = None
    return versions


def artifact_record(artifact: Artifact, export_dir: Path) -> dict:
    """Manifest entry for an artifact whose files are already in ``export_dir``."""
    files = [{"path": name, "size": tree_size(export_dir / name), "sha256": tree_sha256(export_dir / name)} for name in artifact.files]
    return {
        "path": artifact.files[0],
        "target": artifact.target,
        "format": artifact.format,
        "size": sum(f["size"] for f in files),
        "sha256": files[0]["sha256"] if len(files) == 1 else _combined_sha256(files),
        "files": files,
        "precision": artifact.precision,
        "inputs": [t.to_dict() for t in artifact.inputs],
        "outputs": [t.to_dict() for t in artifact.outputs],
        "exporter": artifact.exporter,
        "details": artifact.details,
    }


def _combined_sha256(files: list[dict]) -> str:
    import hashlib

    return hashlib.sha256("".join(f"{f['path']}\0{f['sha256']}\n" for f in files).encode()).hexdigest()


def new_manifest(*, arch: str, family: str, num_classes: int, weights: dict, contract: InputContract,
                 labels_sha256: str, artifacts: dict[str, dict]) -> dict:  # fmt: skip
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "arch": arch,
        "family": family,
        "num_classes": num_classes,
        "weights": weights,
        "input": contract.to_dict(),
        "labels": {"file": LABELS_NAME, "count": num_classes, "sha256": labels_sha256},
        "artifacts": artifacts,
        "versions": tool_versions(),
    }


def same_model(old: dict, new: dict) -> bool:
    """Whether two manifests describe the same network, weights, labels and input contract."""
    same_weights = old.get("weights", {}).get("state_sha256") == new["weights"]["state_sha256"]
    same_labels = old.get("labels", {}).get("sha256") == new["labels"]["sha256"]
    return same_weights and same_labels and all(old.get(k) == new.get(k) for k in ("arch", "num_classes", "input"))


def write_manifest(export_dir: Path, manifest: dict) -> Path:
    path = export_dir / MANIFEST_NAME
    write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path


def read_manifest(export_dir: str | Path) -> dict:
    """Load and sanity-check ``sdeploy.json``; every problem is one clear error."""
    export_dir = Path(export_dir)
    path = export_dir / MANIFEST_NAME if export_dir.is_dir() or not export_dir.suffix else export_dir
    if not path.is_file():
        raise SdeployError(f"no {MANIFEST_NAME} in {export_dir}: point at a directory written by 'sdeploy export'")
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SdeployError(f"{path} is not valid JSON ({exc}); re-run 'sdeploy export'") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise SdeployError(f"{path} is not an sdeploy manifest (expected schema {SCHEMA})")
    for key in ("arch", "num_classes", "weights", "input", "labels", "artifacts"):
        if key not in manifest:
            raise SdeployError(f"{path} has no '{key}' entry; re-run 'sdeploy export'")
    return manifest


def existing_manifest(export_dir: Path) -> dict | None:
    """The directory's manifest if there is a readable one, else None (never an error)."""
    try:
        return read_manifest(export_dir)
    except SdeployError:
        return None


def check_artifact(export_dir: Path, key: str, record: dict) -> ArtifactCheck:
    """Every file of an artifact exists and has the sha256 the manifest recorded."""
    for entry in record.get("files") or [{"path": record["path"], "sha256": record["sha256"]}]:
        path = export_dir / entry["path"]
        if not path.exists():
            return ArtifactCheck(key, f"{entry['path']} is missing")
        actual = tree_sha256(path)
        if actual != entry["sha256"]:
            return ArtifactCheck(key, f"{entry['path']} has sha256 {actual[:12]}..., manifest says {entry['sha256'][:12]}...")
    return ArtifactCheck(key, None)


def manifest_contract(manifest: dict) -> InputContract:
    return InputContract.from_dict(manifest["input"])


def manifest_labels(export_dir: Path, manifest: dict) -> list[str]:
    path = Path(export_dir) / manifest["labels"]["file"]
    try:
        labels = path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        raise SdeployError(f"labels file {path} named by the manifest is missing") from None
    if len(labels) != manifest["num_classes"]:
        raise SdeployError(f"{path} has {len(labels)} labels, the manifest says {manifest['num_classes']} classes")
    return labels
