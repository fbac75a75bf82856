"""``sdeploy bundle``: copy one verified artifact, its labels, ``model.json`` and a self-test into a demo app.

``model.json`` (docs/app-protocol.md) is the app-side copy of the manifest's
contract: the demos read the engine, preprocessing, tensor names and labels
file from it, so they classify exactly as ``sdeploy classify`` does.  Which
backends an app can run, under which file name, and what it checks about
an artifact are declared by each backend (:class:`~..backends.AppBinding`).

The destination is staged: every file goes into a temporary folder beside
it, is checked, and the folder replaces the bundle's files only when all are
complete, so a failed bundle leaves the app as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..backends import AppBinding, ExportOptions, app_bindings, app_names, get_backend
from ..errors import SdeployError, os_error
from ..fsutil import remove_path, replace_path, tree_sha256
from ..manifest import check_artifact, contained_path, labels_path, manifest_labels, read_manifest
from ..modelio import ModelIO, main_output

APP_MODEL_SCHEMA = "sdeploy-app-model/2"
LABELS_FILE = "labels.txt"
MODEL_JSON = "model.json"
#: Where each app keeps its bundled files, relative to the repository root.
APP_FOLDERS = {
    "android": "android_demo/app/src/main/assets",
    "ios": "ios_demo/ShuffleNetDemo/Model",
    "web": "web_demo/model",
}


@dataclass(frozen=True)
class BundleResult:
    app: str
    dest: Path
    files: list[str]
    model_json: dict


def check_app(app: str) -> None:
    if app not in app_names():
        raise SdeployError(f"unknown app '{app}': choose from {', '.join(app_names())}")


def app_target(app: str, target: str | None) -> tuple[str, AppBinding]:
    """The backend the app runs: ``target`` if the app takes it, else the app's default engine."""
    check_app(app)
    bindings = app_bindings(app)
    if target is None:
        return next(iter(bindings.items()))
    get_backend(target)
    if target not in bindings:
        raise SdeployError(f"the {app} app cannot run --target {target}; it takes {', '.join(bindings)}")
    return target, bindings[target]


def default_destination(app: str) -> Path:
    dest = Path(APP_FOLDERS[app])
    if not dest.parts[0] or not Path(dest.parts[0]).is_dir():
        raise SdeployError(f"{dest.parts[0]}/ not found here: run from the repository root or pass --dest DIR")
    return dest


def select_artifact(manifest: dict, export_dir: Path, app: str, target: str, binding: AppBinding,
                    key: str | None = None) -> tuple[str, dict]:  # fmt: skip
    """The artifact the app runs: ``key``, or the target's first one in the manifest; present, intact and usable."""
    candidates = {k: r for k, r in manifest["artifacts"].items() if r["target"] == target}
    if key is None:
        preferred = get_backend(target).target.key(ExportOptions(**binding.export_options))
        key = next(iter(sorted(candidates, key=lambda k: (k != preferred, k != target, k))), None)
    if key is None or key not in candidates:
        have = ", ".join(manifest["artifacts"]) or "none"
        wanted = f"artifact {key}" if key else f"{target} artifact"
        raise SdeployError(f"{export_dir} has no {wanted} for the {app} app (has: {have}); export with --target "
                           f"{target}, or use 'sdeploy bundle --app {app} --arch ARCH'")  # fmt: skip
    record = candidates[key]
    problem = check_artifact(export_dir, key, record).problem
    if problem:
        raise SdeployError(f"refusing to bundle {key}: {problem}; re-export it")
    if binding.check is not None:
        binding.check(record)
    return key, record


def app_model_json(manifest: dict, key: str, record: dict, binding: AppBinding, selftest: str | None) -> dict:
    data = {
        "schema": APP_MODEL_SCHEMA,
        "arch": manifest["arch"],
        "artifact": key,
        "target": record["target"],
        "format": record["format"],
        "model_file": binding.model_file,
        "sha256": record["sha256"],
        "precision": record["precision"],
        "num_classes": manifest["num_classes"],
        "labels_file": LABELS_FILE,
        "input": {"layout": "NCHW", **record["inputs"][0]},
        "output": app_output(record),
        "preprocess": manifest["input"],
        "weights": {k: v for k, v in manifest["weights"].items() if k != "source"},
        "sdeploy_version": manifest["versions"].get("sdeploy"),
    }  # fmt: skip
    if selftest:
        data["selftest_file"] = selftest
    return data


def app_output(record: dict) -> dict:
    """The output an app reads, with its kind: ``probabilities`` (softmax inside the model) or ``logits``."""
    return {**main_output(record), "kind": ModelIO.from_record(record).output_kind}


def bundle(app: str, export_dir: str | Path, dest: str | Path | None = None, target: str | None = None,
           artifact: str | None = None, selftest: bool = True) -> BundleResult:  # fmt: skip
    """Copy the app's artifact, labels, model.json and self-test from ``export_dir`` into ``dest``."""
    target, binding = app_target(app, target)
    export_dir = Path(export_dir)
    manifest = read_manifest(export_dir)
    key, record = select_artifact(manifest, export_dir, app, target, binding, artifact)
    manifest_labels(export_dir, manifest)  # sha256 and count checked before anything is copied
    dest = Path(dest) if dest is not None else default_destination(app)
    if dest.exists() and not dest.is_dir():
        raise SdeployError(f"--dest {dest} is a file; give the app's asset folder")
    stage = dest.with_name(f".{dest.name}.bundle-{os.getpid()}")
    try:
        remove_path(stage)
        stage.mkdir(parents=True)
        files = _stage_files(stage, export_dir, manifest, key, record, binding, selftest)
        _swap_in(stage, dest, files)
    except OSError as exc:
        raise os_error(exc, dest) from None
    finally:
        remove_path(stage)
    return BundleResult(app, dest, files, json.loads((dest / MODEL_JSON).read_text("utf-8")))


def _stage_files(stage: Path, export_dir: Path, manifest: dict, key: str, record: dict, binding: AppBinding,
                 selftest: bool) -> list[str]:  # fmt: skip
    """Write every file of the bundle into ``stage`` and check the copies; returns their names."""
    names = _artifact_file_names(record, binding)
    for entry, name in zip(record["files"], names, strict=True):
        source = contained_path(export_dir, entry["path"], f"artifacts.{key}")
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, stage / name)
        # The copy is checked too: a full disk or a racing writer must not ship a different model.
        if tree_sha256(stage / name) != entry["sha256"]:
            raise SdeployError(f"the copy of {entry['path']} does not match its sha256; nothing was bundled", exit_code=1)
    shutil.copyfile(labels_path(export_dir, manifest), stage / LABELS_FILE)
    selftest_name = None
    if selftest:
        from .selftest import SELFTEST_FILE, write_selftest

        write_selftest(stage / SELFTEST_FILE, export_dir, manifest, key, record, binding)
        selftest_name = SELFTEST_FILE
    model_json = app_model_json(manifest, key, record, binding, selftest_name)
    (stage / MODEL_JSON).write_text(json.dumps(model_json, indent=2) + "\n", encoding="utf-8")
    return [*names, LABELS_FILE, *([selftest_name] if selftest_name else []), MODEL_JSON]


def _artifact_file_names(record: dict, binding: AppBinding) -> list[str]:
    """The app's fixed name for the main file; further files keep their suffix after the main file's stem."""
    suffixes = get_backend(record["target"]).target.suffixes
    stem = binding.model_file.removesuffix(suffixes[0])
    return [binding.model_file, *(stem + suffix for suffix in suffixes[1 : len(record["files"])])]


def _swap_in(stage: Path, dest: Path, files: list[str]) -> None:
    """Replace the bundle's files in ``dest`` with the staged ones; model.json, which apps read first, goes last."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda n: n == MODEL_JSON):
        replace_path(stage / name, dest / name)


__all__ = ["APP_FOLDERS", "BundleResult", "app_model_json", "app_target", "bundle"]
