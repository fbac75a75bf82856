"""``export()``: one model, several targets, one manifest, committed as one transaction.

Every target converts into its own folder inside a private staging folder
(converters' temporary files included), so a target that fails leaves
nothing behind while the others still run.  Only when all have finished
does the export directory change, in one short commit under its lock (see
:mod:`.exportdir`): an interrupted or failed export leaves the previous
export exactly as it was.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .backends import ExportContext, ExportOptions, get_backend, parse_targets
from .backends.calibration import Calibration, load_calibration
from .errors import SdeployError, describe_os_error, missing_modules, os_error
from .exportdir import LOCK_NAME, Commit, commit, locked, staging_dir, tidy
from .fsutil import check_writable, remove_path
from .labels import labels_text, read_labels_file
from .modelio import ModelIO, adapt
from .manifest import (
    LABELS_NAME,
    MANIFEST_NAME,
    WEIGHTS_NAME,
    artifact_record,
    check_artifact,
    describe_difference,
    existing_manifest,
    manifest_text,
    new_manifest,
    same_model,
)
from .progress import Task, status
from .sysutil import TORCH_LOGGERS, captured_output, check_interrupted, private_tempdir
from .zoo import LoadedModel, load_model

FAMILY_NAMES = {"v1": "ShuffleNet V1", "v2": "ShuffleNet V2"}
DEFAULT_EXPORT_ROOT = Path("exports")
#: Names in an export directory that no artifact may take.
RESERVED_NAMES = (MANIFEST_NAME, LABELS_NAME, WEIGHTS_NAME)


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


@dataclass
class _Staged:
    """A target's converted files, waiting in staging for the commit."""

    folder: Path
    record: dict
    names: list[str]  # the artifact's files plus extras, as they will be named in the export directory


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
    force: bool = False,
    progress: bool = True,
    verbose: bool = False,
    **options,
) -> ExportResult:
    """Export ``arch`` to each of ``targets`` under ``out`` (default ``exports/<arch>``).

    ``options`` are export options by name (``sdeploy export --help`` lists
    them, grouped by backend: ``half``, ``quantize``, ``opset``, ``min_ios``...).
    A directory holding another model's export is refused unless ``force``,
    which replaces it.  Raises ``SdeployError`` for bad input; a target that
    fails is reported in the result, and one that cannot honour the options
    (int8 on ncnn) is skipped with a note.
    """
    names = parse_targets(targets)
    export_options = ExportOptions(**options)
    export_options.validate()
    skipped = _skips(names, export_options)
    _check_dependencies([name for name in names if name not in skipped])
    loaded = load_model(arch, weights, num_classes=num_classes, seed=seed, img_size=img_size, progress=progress)
    export_dir = Path(out) if out is not None else DEFAULT_EXPORT_ROOT / loaded.arch.name
    active = [name for name in names if name not in skipped]
    _check_file_names(active, loaded.arch.name, export_options)
    class_labels = read_labels_file(labels, loaded.weights.num_classes) if labels else loaded.weights.labels
    created = prepare_out_dir(export_dir)
    lock_existed = (export_dir / LOCK_NAME).exists()
    identity = _identity(loaded, class_labels)
    staging = staging_dir(export_dir)
    results, staged, manifest = [], {}, None
    try:
        with locked(export_dir):
            notes = tidy(export_dir)
            _check_existing(export_dir, identity, active, loaded.arch.name, export_options, force)
        calibration = _calibration(active, export_options, loaded, progress)
        remove_path(staging)  # an earlier export in this same process may have been cut short
        staging.mkdir()
        for index, name in enumerate(names, start=1):
            label = f"[{index}/{len(names)}] {name}"
            if name in skipped:
                results.append(TargetResult(name, "skipped", 0.0, notes=[skipped[name]]))
                status(f"{label}: skipped (see the notes)", enabled=progress)
                continue
            network = adapt(loaded.model, loaded.weights.contract, ModelIO.from_options(export_options))
            ctx = ExportContext(model=network, arch=loaded.arch.name, contract=loaded.weights.contract,
                                labels=class_labels, options=export_options,
                                metadata=build_metadata(loaded, class_labels, export_options),
                                staging=staging / name, calibration=calibration)  # fmt: skip
            result, staged_target = _export_target(name, ctx, Task(label, enabled=progress), verbose)
            check_interrupted()  # a converter may have swallowed Ctrl-C: never commit after one
            results.append(result)
            if staged_target is not None:
                staged[result.key] = staged_target
        check_interrupted()
        if staged:
            manifest = _commit(export_dir, staging, loaded, class_labels, identity, staged, skipped, force)
    finally:
        remove_path(staging)
        if manifest is None and not (export_dir / MANIFEST_NAME).exists():
            # Nothing was committed, here or by another export: leave no trace of ours.
            remove_path(export_dir if created else export_dir / LOCK_NAME if not lock_existed else staging)
    manifest_path = export_dir / MANIFEST_NAME if manifest else None
    return ExportResult(export_dir, manifest_path, manifest, results, notes)


def _check_dependencies(names: list[str]) -> None:
    """Every converter the chosen targets need is installed: checked before any weights are loaded."""
    missing = {name: missing_modules(get_backend(name).modules) for name in names}
    missing = {name: modules for name, modules in missing.items() if modules}
    if missing:
        packages = ", ".join(sorted({m.split(".")[0] for modules in missing.values() for m in modules}))
        extras = ",".join(dict.fromkeys(get_backend(name).extra for name in missing))
        raise SdeployError(f"--target {', '.join(missing)} needs Python packages that are not installed ({packages}); "
                           f'install them with: pip install "shufflenet-deploy[{extras}]"')  # fmt: skip


def _skips(names: list[str], options: ExportOptions) -> dict[str, str]:
    """Targets that cannot honour the options (int8, pixel input...), with the reason; checks --calib early."""
    targets = {name: get_backend(name).target for name in names}
    skipped = {name: reason for name, target in targets.items() if (reason := target.unavailable(options))}
    if skipped and len(skipped) == len(names):
        reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
        raise SdeployError(f"no chosen target can export with these options ({reasons})")
    calibrating = [name for name, target in targets.items() if name not in skipped and target.int8_calibrates]
    if options.int8 and calibrating and options.calib is None:
        raise SdeployError(
            f"--quantize int8 for {', '.join(calibrating)} needs calibration images: pass --calib DIR "
            "(a folder of typical input images, any layout)"
        )
    return skipped


def _planned_files(names: list[str], arch: str, options: ExportOptions) -> dict[str, tuple[str, list[str]]]:
    """target -> (manifest key, file names) of what this export will write."""
    planned = {}
    for name in names:
        target = get_backend(name).target
        planned[name] = (target.key(options), target.file_names(arch, options))
    return planned


def _check_file_names(names: list[str], arch: str, options: ExportOptions) -> None:
    """Two artifacts may never share a file name, nor take one of the directory's own files."""
    owners: dict[str, str] = {name: "sdeploy itself" for name in RESERVED_NAMES}
    for target, (_, files) in _planned_files(names, arch, options).items():
        for file in files:
            if file in owners:
                raise SdeployError(f"--target {target} would write {file}, which {owners[file]} also writes; "
                                   "export them into different --out directories")  # fmt: skip
            owners[file] = f"--target {target}"


def _identity(loaded: LoadedModel, labels: list[str]) -> dict:
    """The manifest without artifacts: what makes two exports the same model."""
    labels_sha = hashlib.sha256(labels_text(labels).encode()).hexdigest()
    return new_manifest(arch=loaded.arch.name, family=loaded.arch.family, num_classes=loaded.weights.num_classes,
                        weights=_weights_record(loaded), contract=loaded.weights.contract, labels_sha256=labels_sha,
                        artifacts={})  # fmt: skip


def _weights_record(loaded: LoadedModel) -> dict:
    record = loaded.weights.to_dict()
    if loaded.weights.kind == "file":
        # The checkpoint is copied into the export: the directory verifies from anywhere, on any machine.
        record["source"] = str(Path(record.pop("location")).resolve())
        record["file"] = WEIGHTS_NAME
    return record


def _check_existing(export_dir: Path, identity: dict, names: list[str], arch: str, options: ExportOptions,
                    force: bool) -> None:  # fmt: skip
    """Refuse, before any work, to mix two models in one directory or to overwrite another artifact's files."""
    try:
        old = existing_manifest(export_dir)
    except SdeployError as exc:
        if force:
            return
        raise SdeployError(f"{exc} (or pass --force to replace that export)") from None
    if old is None or force:
        return
    if not same_model(old, identity):
        raise SdeployError(
            f"{export_dir} holds an export of another model ({describe_difference(old, identity)}); choose another "
            "--out, or pass --force to replace that export and its artifacts"
        )
    planned = _planned_files(names, arch, options)
    new_keys = {key for key, _ in planned.values()}
    for target, (_, files) in planned.items():
        for key, record in old["artifacts"].items():
            clash = set(files) & _record_names(record)
            if key not in new_keys and clash:
                raise SdeployError(f"--target {target} would overwrite {', '.join(sorted(clash))} of the existing "
                                   f"artifact {key}; use another --out")  # fmt: skip


def _record_names(record: dict) -> set[str]:
    return {entry["path"] for entry in record["files"]} | set(record.get("extras", []))


def _calibration(names, options: ExportOptions, loaded: LoadedModel, progress: bool) -> Calibration | None:
    """Calibration tensors, loaded once for every target that quantizes activations."""
    if not options.int8 or not any(get_backend(name).target.int8_calibrates for name in names):
        return None
    with Task("calibration images", enabled=progress) as task:
        calibration = load_calibration(options.calib, loaded.weights.contract, options.calib_samples)
        task.done(f"{calibration.count} of {calibration.images_found} from {options.calib}")
    return calibration


def prepare_out_dir(export_dir: Path) -> bool:
    """Create the directory if needed and check it is writable; whether it was created here."""
    if export_dir.exists() and not export_dir.is_dir():
        raise SdeployError(f"--out {export_dir} is a file; give a directory")
    created = not export_dir.exists()
    check_writable(export_dir, "--out")
    return created


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


def _export_target(name: str, ctx: ExportContext, task: Task, verbose: bool) -> tuple[TargetResult, _Staged | None]:
    backend = get_backend(name)
    log = io.StringIO()
    with task:
        try:
            ctx.staging.mkdir()
            loggers = TORCH_LOGGERS + backend.loggers
            with captured_output(log, loggers, enabled=not verbose), private_tempdir(ctx.staging.parent / "tmp"):
                backend.check_export_dependencies()  # importing a converter can print banners too
                artifact = backend.target.export(ctx)
            _check_promised_files(artifact, backend.target.file_names(ctx.arch, ctx.options))
            record = artifact_record(artifact, ctx.staging)
            record["options"] = ctx.options.to_dict()  # how to make it again (verify --locate re-exports parts)
        except Exception as exc:  # a failing converter must not stop the other targets
            remove_path(ctx.staging)
            message = _failure_message(exc, log.getvalue(), ctx)
            task.done(f"FAILED: {message}")
            return TargetResult(name, "failed", task.elapsed, error=message), None
        task.done(f"ok, {record['path']}")
    result = TargetResult(name, "ok", task.elapsed, key=artifact.key, path=record["path"], size=record["size"],
                          precision=artifact.precision, notes=artifact.notes)  # fmt: skip
    return result, _Staged(ctx.staging, record, [*artifact.files, *artifact.extras])


def _space_needed(ctx: ExportContext) -> int:
    """A generous estimate of what one target writes: its artifact, plus converters' temporary copies."""
    weights = sum(p.numel() * 4 for p in ctx.model.state_dict().values())
    return 3 * weights


def _check_promised_files(artifact, promised: list[str]) -> None:
    if artifact.files != promised:
        raise SdeployError(f"the {artifact.target} exporter wrote {artifact.files}, not the promised {promised} (a bug)")


def _failure_message(exc: Exception, log: str, ctx: ExportContext) -> str:
    if isinstance(exc, SdeployError):
        return str(exc)
    if isinstance(exc, OSError):
        return describe_os_error(exc, ctx.staging.parent.parent, needed=_space_needed(ctx))
    # Converter exceptions can span pages; the first line says what broke.
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}"[:400]


def _commit(export_dir: Path, staging: Path, loaded: LoadedModel, labels: list[str], identity: dict,
            staged: dict[str, _Staged], skipped: dict[str, str], force: bool) -> dict:  # fmt: skip
    """Merge with the directory's current manifest and switch to the new files, under the lock."""
    try:
        (staging / LABELS_NAME).write_text(labels_text(labels), "utf-8")
        if loaded.weights.kind == "file":
            shutil.copyfile(loaded.weights.location, staging / WEIGHTS_NAME)
    except OSError as exc:
        raise os_error(exc, staging) from None
    moves = {LABELS_NAME: staging / LABELS_NAME}
    if loaded.weights.kind == "file":
        moves[WEIGHTS_NAME] = staging / WEIGHTS_NAME
    for item in staged.values():
        moves.update({name: item.folder / name for name in item.names})
    with locked(export_dir):
        tidy(export_dir)
        old = None if force else existing_manifest(export_dir)
        if old is not None and not same_model(old, identity):  # another process got there first
            raise SdeployError(f"{export_dir} now holds an export of another model; nothing was changed", exit_code=1)
        manifest = dict(identity, artifacts=_merged_artifacts(export_dir, old, staged))
        if skipped:
            manifest["notes"] = [f"{name}: {reason}" for name, reason in skipped.items()]
        removals = _stale_files(export_dir, force, old, staged, moves)
        try:
            commit(export_dir, Commit(moves, removals, manifest_text(manifest)))
        except OSError as exc:
            raise os_error(exc, export_dir) from None
    return manifest


def _merged_artifacts(export_dir: Path, old: dict | None, staged: dict[str, _Staged]) -> dict:
    kept = {}
    for key, record in (old or {}).get("artifacts", {}).items():
        if key not in staged and check_artifact(export_dir, key, record).problem is None:
            kept[key] = record
    return {**kept, **{key: item.record for key, item in staged.items()}}


def _stale_files(export_dir: Path, force: bool, old: dict | None, staged: dict[str, _Staged], moves: dict) -> list[str]:
    """Files of replaced artifacts that the new ones do not overwrite; with --force, every old artifact's."""
    if force:
        try:
            old = existing_manifest(export_dir)
        except SdeployError:
            return []  # a damaged manifest's paths are not to be trusted, so nothing is removed by name
    if old is None:
        return []
    replaced = old["artifacts"] if force else {k: r for k, r in old["artifacts"].items() if k in staged}
    stale = {name for record in replaced.values() for name in _record_names(record)} - set(moves)
    if force and old["weights"].get("file") and WEIGHTS_NAME not in moves:
        stale.add(WEIGHTS_NAME)
    return sorted(name for name in stale if (export_dir / name).exists())
