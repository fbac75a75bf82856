"""``<export dir>/sdeploy.json``: what was exported, from which weights, for which input contract.

``sdeploy verify``, ``sdeploy bench``, ``sdeploy bundle`` and the demo apps
read only this file, so it is the single source of truth about an export, and
it is treated as untrusted input: it is checked against the schema below
before anything is used, numbers included, and every path in it must be
relative, normalised and inside the export directory (no ``..``, no absolute
path, no symlink that leads out).  So the directory can be moved or copied,
and a hostile manifest cannot make sdeploy read or copy files elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import time
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path, PurePosixPath

from . import __version__
from .errors import SdeployError
from .fsutil import read_json_file, tree_sha256, tree_size, write_text_atomic
from .labels import parse_labels
from .preprocess import MAX_IMG_SIZE, InputContract

MANIFEST_NAME = "sdeploy.json"
LABELS_NAME = "labels.txt"
#: The checkpoint an export was made from, copied in so the directory verifies anywhere.
WEIGHTS_NAME = "weights.pt"
SCHEMA = "sdeploy-manifest/2"
READABLE_SCHEMAS = ("sdeploy-manifest/1", SCHEMA)
#: Packages every export uses; each backend adds its own.
CORE_PACKAGES = ("torch", "numpy", "Pillow")
MAX_CLASSES = 100_000
MAX_MANIFEST_BYTES = 16 << 20
PRECISIONS = ("fp32", "fp16", "int8")
WEIGHT_KINDS = ("imagenet", "random", "file", "none")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ArtifactCheck:
    key: str
    problem: str | None  # None when every file exists with its recorded hash


def tool_versions() -> dict[str, str | None]:
    from .backends import recorded_packages

    versions: dict[str, str | None] = {"sdeploy": __version__, "python": platform.python_version()}
    for package in (*CORE_PACKAGES, *recorded_packages()):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def artifact_record(artifact, export_dir: Path) -> dict:
    """Manifest entry for an artifact whose files are in ``export_dir`` (staged or in place)."""
    files = [{"path": name, "size": tree_size(export_dir / name), "sha256": tree_sha256(export_dir / name)}
             for name in artifact.files]  # fmt: skip
    record = {
        "path": artifact.files[0],
        "target": artifact.target,
        "format": artifact.format,
        "size": sum(f["size"] for f in files),
        "sha256": files[0]["sha256"] if len(files) == 1 else combined_sha256(files),
        "files": files,
        "precision": artifact.precision,
        "inputs": [t.to_dict() for t in artifact.inputs],
        "outputs": [t.to_dict() for t in artifact.outputs],
        "exporter": artifact.exporter,
        "details": artifact.details,
    }
    if artifact.extras:
        record["extras"] = list(artifact.extras)
    return record


def combined_sha256(files: list[dict]) -> str:
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
    same_weights = old["weights"]["state_sha256"] == new["weights"]["state_sha256"]
    same_labels = old["labels"]["sha256"] == new["labels"]["sha256"]
    return same_weights and same_labels and all(old.get(k) == new.get(k) for k in ("arch", "num_classes", "input"))


def describe_difference(old: dict, new: dict) -> str:
    for key, what in (("arch", "arch"), ("num_classes", "number of classes")):
        if old.get(key) != new.get(key):
            return f"{what} {old.get(key)} there, {new.get(key)} now"
    if old["weights"]["state_sha256"] != new["weights"]["state_sha256"]:
        return f"other weights ({old['weights'].get('kind')} there)"
    if old["input"] != new["input"]:
        return "another input contract or size"
    return "other labels"


def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, sort_keys=False) + "\n"


def write_manifest(export_dir: Path, manifest: dict) -> Path:
    path = export_dir / MANIFEST_NAME
    write_text_atomic(path, manifest_text(manifest))
    return path


def read_manifest(export_dir: str | Path) -> dict:
    """Load ``sdeploy.json`` and check it against the schema; every problem is one clear error."""
    export_dir = Path(export_dir)
    if export_dir.is_file() and export_dir.name == MANIFEST_NAME:
        export_dir = export_dir.parent
    path = export_dir / MANIFEST_NAME
    if not path.is_file():
        raise SdeployError(f"no {MANIFEST_NAME} in {export_dir}: point at a directory written by 'sdeploy export'")
    manifest = read_json_file(path, "the manifest", MAX_MANIFEST_BYTES, "; re-run 'sdeploy export'")
    try:
        validate_manifest(manifest, export_dir)
    except SdeployError as exc:
        raise SdeployError(f"{path} is not a valid sdeploy manifest: {exc}; re-run 'sdeploy export'") from None
    return manifest


def existing_manifest(export_dir: Path) -> dict | None:
    """The directory's manifest, None if it has none; a damaged one is an error."""
    if not (export_dir / MANIFEST_NAME).exists():
        return None
    return read_manifest(export_dir)


# ---------------------------------------------------------------- schema


def validate_manifest(manifest: object, export_dir: Path) -> None:
    _expect(manifest, dict, "the file")
    if manifest.get("schema") not in READABLE_SCHEMAS:
        raise SdeployError(f"schema is {manifest.get('schema')!r}, expected {SCHEMA}")
    from .nets import get_arch

    get_arch(_expect(manifest.get("arch"), str, "arch"))
    classes = _bounded_int(manifest.get("num_classes"), "num_classes", 1, MAX_CLASSES)
    _validate_weights(_expect(manifest.get("weights"), dict, "weights"), export_dir)
    InputContract.from_dict(_expect(manifest.get("input"), dict, "input"))
    labels = _expect(manifest.get("labels"), dict, "labels")
    contained_path(export_dir, labels.get("file"), "labels.file")
    _sha(labels.get("sha256"), "labels.sha256")
    if _bounded_int(labels.get("count"), "labels.count", 1, MAX_CLASSES) != classes:
        raise SdeployError(f"labels.count {labels['count']} differs from num_classes {classes}")
    artifacts = _expect(manifest.get("artifacts"), dict, "artifacts")
    for key, record in artifacts.items():
        _validate_artifact(key, record, classes, export_dir)


def _validate_weights(weights: dict, export_dir: Path) -> None:
    if weights.get("kind") not in WEIGHT_KINDS:
        raise SdeployError(f"weights.kind must be one of {', '.join(WEIGHT_KINDS)}, got {weights.get('kind')!r}")
    _sha(weights.get("state_sha256"), "weights.state_sha256")
    if weights["kind"] == "random":
        _bounded_int(weights.get("seed", 0), "weights.seed", 0, 2**32 - 1)
        _bounded_int(weights.get("generator", 1), "weights.generator", 1, 1000)
    if weights["kind"] == "file":
        _sha(weights.get("file_sha256"), "weights.file_sha256")
        if weights.get("file") is not None:
            contained_path(export_dir, weights["file"], "weights.file")


def _validate_artifact(key: object, record: object, classes: int, export_dir: Path) -> None:
    where = f"artifacts.{key}"
    if not isinstance(key, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", key):
        raise SdeployError(f"artifact key {key!r} is not a valid name")
    _expect(record, dict, where)
    from .backends import format_backend

    backend = format_backend(_expect(record.get("format"), str, f"{where}.format"))
    if record.get("precision") not in PRECISIONS:
        raise SdeployError(f"{where}.precision must be one of {', '.join(PRECISIONS)}")
    files = _expect(record.get("files"), list, f"{where}.files")
    for entry in files:
        _expect(entry, dict, f"{where}.files[]")
        contained_path(export_dir, entry.get("path"), f"{where}.files[].path")
        if not any(entry["path"].endswith(suffix) for suffix in backend.target.suffixes):
            raise SdeployError(f"{where}: {entry['path']!r} is not a {backend.name} file "
                               f"({', '.join(backend.target.suffixes)})")  # fmt: skip
        _sha(entry.get("sha256"), f"{where}.files[].sha256")
        _bounded_int(entry.get("size"), f"{where}.files[].size", 0, 1 << 40)
    if not files or files[0]["path"] != record.get("path"):
        raise SdeployError(f"{where}.files must list the artifact's files, its path first")
    _sha(record.get("sha256"), f"{where}.sha256")
    for kind in ("inputs", "outputs"):
        specs = _expect(record.get(kind), list, f"{where}.{kind}")
        if not specs:
            raise SdeployError(f"{where}.{kind} is empty")
        for spec in specs:
            _validate_tensor(spec, f"{where}.{kind}[]")
    _expect(record.get("details", {}), dict, f"{where}.details")


def _validate_tensor(spec: object, where: str) -> None:
    _expect(spec, dict, where)
    _expect(spec.get("name"), str, f"{where}.name")
    shape = _expect(spec.get("shape"), list, f"{where}.shape")
    for dim in shape:
        if dim != "batch":
            _bounded_int(dim, f"{where}.shape[]", 1, max(MAX_CLASSES, MAX_IMG_SIZE))


def contained_path(export_dir: Path, name: object, where: str) -> Path:
    """``export_dir / name`` when ``name`` names an entry directly inside ``export_dir`` (exports are flat)."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise SdeployError(f"{where} must be a file name inside the export directory, got {name!r}")
    if PurePosixPath(name).is_absolute() or "/" in name or "\\" in name or name in (".", ".."):
        raise SdeployError(f"{where} {name!r} must be a plain file name inside the export directory, not a path")
    root = export_dir.resolve()
    target = (export_dir / name).resolve()
    if target.parent != root:
        raise SdeployError(f"{where} {name!r} leads outside the export directory (through a symlink)")
    return export_dir / name


def _expect(value: object, kind: type, where: str):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SdeployError(f"{where} must be a {_KIND_NAMES.get(kind, kind.__name__)}, got {type(value).__name__}")
    return value


_KIND_NAMES = {dict: "JSON object", list: "list", str: "string", int: "whole number"}


def _bounded_int(value: object, where: str, low: int, high: int) -> int:
    _expect(value, int, where)
    if not low <= value <= high:
        raise SdeployError(f"{where} is {value}, outside {low}..{high}")
    return value


def _sha(value: object, where: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise SdeployError(f"{where} must be a sha256 hex digest")
    return value


# ---------------------------------------------------------------- files


def check_artifact(export_dir: Path, key: str, record: dict) -> ArtifactCheck:
    """Every file of an artifact exists, is of the right kind, and has the sha256 the manifest recorded."""
    from .backends import format_backend

    directory = format_backend(record["format"]).target.directory_artifact
    for entry in record["files"]:
        path = contained_path(export_dir, entry["path"], f"artifacts.{key}")
        if not path.exists():
            return ArtifactCheck(key, f"{entry['path']} is missing")
        if path.is_symlink() or (path.is_dir() if not directory else not path.is_dir()):
            return ArtifactCheck(key, f"{entry['path']} is not a {'folder' if directory else 'regular file'}")
        actual = tree_sha256(path)
        if actual != entry["sha256"]:
            return ArtifactCheck(key, f"{entry['path']} has sha256 {actual[:12]}..., manifest says {entry['sha256'][:12]}...")
    return ArtifactCheck(key, None)


def manifest_contract(manifest: dict) -> InputContract:
    return InputContract.from_dict(manifest["input"])


def labels_path(export_dir: Path, manifest: dict) -> Path:
    return contained_path(export_dir, manifest["labels"]["file"], "labels.file")


def manifest_labels(export_dir: Path, manifest: dict) -> list[str]:
    """The labels file, checked against the manifest's sha256 and class count."""
    path = labels_path(Path(export_dir), manifest)
    if not path.is_file() or path.is_symlink():
        raise SdeployError(f"labels file {path} named by the manifest is missing; re-export")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest["labels"]["sha256"]:
        raise SdeployError(f"{path} does not match the sha256 the manifest recorded; re-export or restore it")
    labels = parse_labels(data.decode("utf-8", errors="replace"))
    if len(labels) != manifest["num_classes"]:
        raise SdeployError(f"{path} has {len(labels)} labels, the manifest says {manifest['num_classes']} classes")
    return labels
