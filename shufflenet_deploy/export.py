"""``export()``: one model, several targets, one manifest.

Each target writes into its own staging folder inside the output directory;
only a target that succeeds has its files moved into place, so a failure
leaves nothing behind while the other targets still run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .errors import SdeployError
from .fsutil import remove_path, replace_path, write_text_atomic
from .labels import read_labels_file
from .manifest import (
    LABELS_NAME,
    artifact_record,
    check_artifact,
    existing_manifest,
    new_manifest,
    same_model,
    write_manifest,
)
from .progress import Task, status
from .targets import TARGETS, Artifact, ExportContext, ExportOptions, parse_targets
from .targets.quantize import Calibration, load_calibration
from .zoo import LoadedModel, load_model

FAMILY_NAMES = {"v1": "ShuffleNet V1", "v2": "ShuffleNet V2"}
DEFAULT_EXPORT_ROOT = Path("exports")


@dataclass
class TargetResult:
    target: str
    status: str  # "ok", "failed" or "skipped" (the target cannot honour the options, e.g. int8 on ncnn)
    seconds: float
    key: str | None = None
    path: str | None = None
    size: int | None = None
    precision: str | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ExportResult:
    export_dir: Path
    manifest_path: Path | None
    manifest: dict | None
    results: list[TargetResult]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No target failed (a skipped target is not a failure: its note says why)."""
        return all(r.status != "failed" for r in self.results)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "export_dir": str(self.export_dir),
            "manifest": str(self.manifest_path) if self.manifest_path else None,
            "targets": [r.to_dict() for r in self.results],
            "notes": self.notes,
        }


def export(
    arch: str | None = None,
    targets: str | Iterable[str] = "all",
    *,
    weights: str | Path = "imagenet",
    out: str | Path | None = None,
    img_size: int | None = None,
    num_classes: int | None = None,
    labels: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    verbose: bool = False,
    **options,
) -> ExportResult:
    """Export ``arch`` to each of ``targets`` under ``out`` (default ``exports/<arch>``).

    ``options`` are the fields of :class:`~shufflenet_deploy.targets.ExportOptions`
    (batch, dynamic_batch, half, opset, bytecode_version, precision, min_ios,
    coreml_mode, keep_intermediate, author, license, quantize, calib,
    calib_samples).  Raises ``SdeployError`` for bad input; a target that fails
    is reported in the result instead, and one that cannot export int8 is
    skipped with a note.
    """
    names = parse_targets(targets)
    export_options = ExportOptions(**options)
    export_options.validate()
    skipped = _int8_skips(names, export_options)
    loaded = load_model(arch, weights, num_classes=num_classes, seed=seed, img_size=img_size, progress=progress)
    export_dir = Path(out) if out is not None else DEFAULT_EXPORT_ROOT / loaded.arch.name
    calibration = _calibration(names, skipped, export_options, loaded, progress)
    prepare_out_dir(export_dir)
    class_labels = read_labels_file(labels, loaded.weights.num_classes) if labels else loaded.weights.labels
    metadata = build_metadata(loaded, class_labels, export_options)

    results, records = [], {}
    for index, name in enumerate(names, start=1):
        if name in skipped:
            results.append(TargetResult(name, "skipped", 0.0, notes=[skipped[name]]))
            status(f"[{index}/{len(names)}] {name}: skipped, no int8 export (see the notes)", enabled=progress)
            continue
        task = Task(f"[{index}/{len(names)}] {name}", enabled=progress)
        ctx = ExportContext(
            model=loaded.model,
            arch=loaded.arch.name,
            contract=loaded.weights.contract,
            labels=class_labels,
            options=export_options,
            metadata=metadata,
            staging=export_dir / f".sdeploy-staging-{name}-{os.getpid()}",
            calibration=calibration,
        )
        result, record = _export_target(name, ctx, export_dir, task, verbose)
        results.append(result)
        if record is not None:
            records[result.key] = record
    manifest, manifest_path, notes = None, None, []
    if records:
        manifest, notes = _merged_manifest(export_dir, loaded, class_labels, records)
        if skipped:
            manifest["notes"] = [f"{name}: {reason}" for name, reason in skipped.items()]
        manifest_path = write_manifest(export_dir, manifest)
    return ExportResult(export_dir, manifest_path, manifest, results, notes)


def _int8_skips(names: list[str], options: ExportOptions) -> dict[str, str]:
    """Targets that cannot export int8, with the reason; checks --calib before any slow work starts."""
    if not options.int8:
        return {}
    skipped = {name: TARGETS[name].int8_unavailable for name in names if TARGETS[name].int8_unavailable}
    if len(skipped) == len(names):
        reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
        raise SdeployError(f"--quantize int8: no chosen target can export int8 ({reasons})")
    calibrating = [name for name in names if name not in skipped and TARGETS[name].int8_calibrates]
    if calibrating and options.calib is None:
        raise SdeployError(
            f"--quantize int8 for {', '.join(calibrating)} needs calibration images: pass --calib DIR "
            "(a folder of typical input images, any layout)"
        )
    return skipped


def _calibration(names, skipped, options: ExportOptions, loaded: LoadedModel, progress: bool) -> Calibration | None:
    """Calibration tensors, loaded once for every target that quantizes activations."""
    if not options.int8 or not any(TARGETS[name].int8_calibrates for name in names if name not in skipped):
        return None
    with Task("calibration images", enabled=progress) as task:
        calibration = load_calibration(options.calib, loaded.weights.contract, options.calib_samples)
        task.done(f"{calibration.count} of {calibration.images_found} from {options.calib}")
    return calibration


def prepare_out_dir(export_dir: Path) -> None:
    if export_dir.exists() and not export_dir.is_dir():
        raise SdeployError(f"--out {export_dir} is a file; give a directory")
    try:
        export_dir.mkdir(parents=True, exist_ok=True)
        probe = export_dir / f".sdeploy-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SdeployError(f"cannot write to {export_dir} ({exc.strerror or exc}); choose another --out") from None


def build_metadata(loaded: LoadedModel, labels: list[str], options: ExportOptions) -> dict[str, str]:
    """String metadata embedded in every artifact that has a place for it."""
    spec, info = loaded.arch, loaded.weights
    groups = f" g={spec.groups}" if spec.groups else ""
    description = (
        f"{spec.name}: {FAMILY_NAMES[spec.family]} {spec.width_label}{groups} image classifier, {info.num_classes} classes, "
        f"{info.kind} weights, {info.contract.img_size}x{info.contract.img_size} input; exported by sdeploy {__version__}"
    )
    return {
        "sdeploy_version": __version__,
        "arch": spec.name,
        "family": spec.family,
        "num_classes": str(info.num_classes),
        "weights": info.kind,
        "weights_sha256": info.state_sha256,
        "input_contract": json.dumps(info.contract.to_dict(), sort_keys=True),
        "labels": json.dumps(labels),
        "author": options.author,
        "license": options.license or default_license(loaded),
        "description": description,
    }


def default_license(loaded: LoadedModel) -> str:
    if loaded.weights.kind == "imagenet":
        return "BSD-3-Clause (torchvision weights)"
    return "unspecified (set it with --license)"


def _export_target(name: str, ctx: ExportContext, export_dir: Path, task: Task, verbose: bool):
    target = TARGETS[name]
    log = io.StringIO()
    with task:
        try:
            ctx.staging.mkdir(parents=False, exist_ok=False)
            with _captured_output(log, enabled=not verbose):
                target.check_dependencies()  # importing a converter can print banners too
                artifact = target.export(ctx)
            _move_into_place(artifact, ctx.staging, export_dir)
            record = artifact_record(artifact, export_dir)
        except Exception as exc:  # a failing converter must not stop the other targets
            message = _failure_message(exc, log.getvalue())
            task.done(f"FAILED: {message}")
            return TargetResult(name, "failed", task.elapsed, error=message), None
        finally:
            remove_path(ctx.staging)
        task.done(f"ok, {record['path']}")
    result = TargetResult(
        name, "ok", task.elapsed, key=artifact.key, path=record["path"], size=record["size"],
        precision=artifact.precision, notes=artifact.notes,
    )  # fmt: skip
    return result, record


def _failure_message(exc: Exception, log: str) -> str:
    if isinstance(exc, SdeployError):
        return str(exc)
    # Converter exceptions can span pages; the first line says what broke.
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}"[:400]


def _move_into_place(artifact: Artifact, staging: Path, export_dir: Path) -> None:
    for name in [*artifact.files, *artifact.extras]:
        replace_path(staging / name, export_dir / name)


@contextlib.contextmanager
def _captured_output(log: io.StringIO, enabled: bool) -> Iterator[None]:
    """Converters print banners, progress bars and warnings; keep them out of the user's terminal."""
    if not enabled:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch._dynamo", "torch.export", "coremltools")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _merged_manifest(export_dir: Path, loaded: LoadedModel, labels: list[str], records: dict) -> tuple[dict, list[str]]:
    labels_text = "\n".join(labels) + "\n"
    write_text_atomic(export_dir / LABELS_NAME, labels_text)
    manifest = new_manifest(
        arch=loaded.arch.name,
        family=loaded.arch.family,
        num_classes=loaded.weights.num_classes,
        weights=loaded.weights.to_dict(),
        contract=loaded.weights.contract,
        labels_sha256=hashlib.sha256(labels_text.encode()).hexdigest(),
        artifacts=records,
    )
    old = existing_manifest(export_dir)
    notes = []
    if old and same_model(old, manifest):
        kept = {
            key: record
            for key, record in old["artifacts"].items()
            if key not in records and check_artifact(export_dir, key, record).problem is None
        }
        manifest["artifacts"] = {**kept, **records}
    elif old and old["artifacts"]:
        notes.append(
            f"{export_dir}/sdeploy.json described another model or input size; its artifacts "
            f"({', '.join(old['artifacts'])}) are no longer listed"
        )
    return manifest, notes
