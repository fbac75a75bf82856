"""``sdeploy bundle``: copy one verified artifact, its labels and ``model.json`` into a demo app.

``model.json`` is the app-side copy of the manifest's contract: the demos
read the preprocessing, the input/output names and the labels file from it,
so they classify exactly as ``sdeploy classify`` does.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import SdeployError
from ..fsutil import atomic_path, remove_path, tree_sha256
from ..manifest import check_artifact, read_manifest
from ..targets.torchscript import ANDROID_LITE_1_13_BYTECODE

APP_MODEL_SCHEMA = "sdeploy-app-model/1"


@dataclass(frozen=True)
class AppSpec:
    name: str
    target: str  # the export target the app runs
    artifact_keys: tuple[str, ...]  # acceptable manifest keys, preferred first
    model_name: str  # fixed file name inside the app, so app code never changes with the arch
    default_dest: str  # relative to the repository root
    export_options: dict


APPS = {
    "android": AppSpec("android", "torchscript", ("torchscript",), "model.ptl", "android_demo/app/src/main/assets",
                       {"bytecode_version": ANDROID_LITE_1_13_BYTECODE}),
    "ios": AppSpec("ios", "coreml", ("coreml", "coreml-fp32"), "ShuffleNetClassifier.mlpackage",
                   "ios_demo/ShuffleNetDemo/Model", {"coreml_mode": "classifier"}),
    "web": AppSpec("web", "onnx", ("onnx", "onnx-fp16"), "model.onnx", "web_demo/model", {}),
}  # fmt: skip


@dataclass(frozen=True)
class BundleResult:
    app: str
    dest: Path
    files: list[str]
    model_json: dict


def default_destination(app: str) -> Path:
    spec = APPS[app]
    dest = Path(spec.default_dest)
    app_root = Path(spec.default_dest.split("/")[0])
    if not app_root.is_dir():
        raise SdeployError(f"{app_root}/ not found here: run from the repository root or pass --dest DIR")
    return dest


def select_artifact(manifest: dict, export_dir: Path, spec: AppSpec) -> tuple[str, dict]:
    """The artifact the app runs: present, intact, and usable by the app's runtime."""
    key = next((k for k in spec.artifact_keys if k in manifest["artifacts"]), None)
    if key is None:
        raise SdeployError(
            f"{export_dir} has no {spec.target} artifact for the {spec.name} app (has: {', '.join(manifest['artifacts']) or 'none'}); "
            f"export with --target {spec.target}, or use 'sdeploy bundle --app {spec.name} --arch ARCH'"
        )
    record = manifest["artifacts"][key]
    problem = check_artifact(export_dir, key, record).problem
    if problem:
        raise SdeployError(f"refusing to bundle {key}: {problem}; re-export it")
    _check_app_compatibility(spec, record)
    return key, record


def _check_app_compatibility(spec: AppSpec, record: dict) -> None:
    if spec.name == "android":
        version = record["details"].get("bytecode_version")
        if version is None or version > ANDROID_LITE_1_13_BYTECODE:
            raise SdeployError(
                f"the .ptl has bytecode version {version}, newer than pytorch_android_lite 1.13.1 reads "
                f"({ANDROID_LITE_1_13_BYTECODE}); re-export with --bytecode-version {ANDROID_LITE_1_13_BYTECODE}"
            )
    if spec.name == "ios" and record["details"].get("mode") != "classifier":
        raise SdeployError("the iOS app needs a classifier-mode Core ML model; re-export with --coreml-mode classifier")


def app_model_json(manifest: dict, key: str, record: dict, spec: AppSpec, labels_file: str) -> dict:
    return {
        "schema": APP_MODEL_SCHEMA,
        "arch": manifest["arch"],
        "artifact": key,
        "format": record["format"],
        "model_file": spec.model_name,
        "sha256": record["sha256"],
        "precision": record["precision"],
        "num_classes": manifest["num_classes"],
        "labels_file": labels_file,
        "input": record["inputs"][0],
        "output": next((o for o in record["outputs"] if o["name"] == "logits"), record["outputs"][0]),
        "preprocess": manifest["input"],
        "weights": manifest["weights"],
        "sdeploy_version": manifest["versions"].get("sdeploy"),
    }


def bundle(app: str, export_dir: str | Path, dest: str | Path | None = None) -> BundleResult:
    """Copy the app's artifact, labels and model.json from ``export_dir`` into ``dest``."""
    if app not in APPS:
        raise SdeployError(f"unknown app '{app}': choose from {', '.join(APPS)}")
    spec = APPS[app]
    export_dir = Path(export_dir)
    manifest = read_manifest(export_dir)
    key, record = select_artifact(manifest, export_dir, spec)
    dest = Path(dest) if dest is not None else default_destination(app)
    dest.mkdir(parents=True, exist_ok=True)

    labels_name = "labels.txt"
    model_json = app_model_json(manifest, key, record, spec, labels_name)
    copies = {spec.model_name: export_dir / record["path"], labels_name: export_dir / manifest["labels"]["file"]}
    for name, source in copies.items():
        with atomic_path(dest / name) as tmp:
            if source.is_dir():
                shutil.copytree(source, tmp)
            else:
                shutil.copyfile(source, tmp)
    # The copy is checked too: a full disk or a racing writer must not ship a different model.
    if tree_sha256(dest / spec.model_name) != record["sha256"]:
        remove_path(dest / spec.model_name)
        raise SdeployError(f"the copy of {record['path']} in {dest} does not match its sha256; nothing was bundled")
    with atomic_path(dest / "model.json") as tmp:
        tmp.write_text(json.dumps(model_json, indent=2) + "\n", encoding="utf-8")
    return BundleResult(app, dest, [spec.model_name, labels_name, "model.json"], model_json)


__all__ = ["APPS", "BundleResult", "app_model_json", "bundle"]
