"""``verify()``: numerical parity of every exported artifact with the eager PyTorch model.

The reference is rebuilt from the manifest (arch, weights and their hash), and
every runtime gets identical inputs: seeded synthetic images and, optionally,
real images through the manifest's exact preprocessing.  Resized pixels are
rounded to 8 bits, as an app feeds them, so image-input artifacts (Core ML)
and tensor-input artifacts see exactly the same data.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .apps.device_report import judge_device_report
from .backends import (
    RuntimeUnavailable,
    backend_for_runtime,
    check_runtime_name,
    crosscheck_runtimes,
    runner_class,
    runtime_for,
)
from .errors import SdeployError
from .locate import locate as locate_divergence
from .manifest import check_artifact, manifest_contract, manifest_labels, read_manifest
from .modelio import ModelIO
from .parity import compare
from .predict import predict_logits, softmax
from .preprocess import InputContract, list_images, preprocess_8bit, random_inputs
from .progress import Task
from .reference import rebuild_reference
from .tolerances import Fp16Floor, Limits, fp16_floor, limits


@dataclass
class VerifyInputs:
    tensors: np.ndarray  # N x 3 x S x S, normalised
    sources: list[str]  # "random:<i>" or the image path
    targets: np.ndarray | None  # class index per input where the image folder names it, else -1


@dataclass
class RuntimeReport:
    key: str
    runtime: str
    precision: str
    status: str  # pass | fail | error | unavailable | unsupported (a known bug of the runtime, with the reason)
    description: str = ""
    atol: float | None = None
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    min_cosine: float | None = None
    top1_agreement: float | None = None
    decisive_top1_agreement: float | None = None
    top5_overlap: float | None = None
    ms_per_inference: float | None = None
    accuracy: float | None = None
    error: str | None = None
    reason: str | None = None  # why a fail failed
    min_cosine_allowed: float | None = None
    tolerance_rule: str | None = None
    first_divergent_unit: str | None = None
    locate: dict | None = None  # the bisection's probes, or why it could not run
    required: bool = True  # False for a default cross-check: only its failures, not its known limits, count


@dataclass
class VerifyReport:
    export_dir: str
    arch: str
    weights: dict
    samples: int
    images: int
    seed: int
    reference: dict
    runtimes: list[RuntimeReport] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        counted = [r for r in self.runtimes if r.required or r.status != "unsupported"]
        return bool(counted) and all(r.status == "pass" for r in counted)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        return data


def verify(
    export_dir: str | Path,
    *,
    images: str | Path | None = None,
    samples: int = 8,
    seed: int = 0,
    atol: float | None = None,
    runtimes: list[str] | None = None,
    threads: int | None = None,
    weights: str | Path | None = None,
    locate: bool | None = None,
    device_reports: list[str | Path] = (),
    progress: bool = True,
) -> VerifyReport:
    """Compare every artifact (or those of ``runtimes``) with eager PyTorch; see the module docstring.

    Each artifact runs in its format's runtime and, by default, in every
    installed second runtime of that format (OpenVINO and OpenCV for ONNX).
    ``weights`` points at the checkpoint of a ``--weights PATH`` export when
    the copy inside the export directory is gone.  ``locate`` finds the first
    diverging unit of the network (:mod:`.locate`): for every artifact when
    True, never when False, and for those that fail numerically when None.
    Each of ``device_reports`` (an app's self-test result) becomes one more
    row, judged here (:mod:`.apps.device_report`).
    """
    export_dir = Path(export_dir)
    manifest = read_manifest(export_dir)
    selected = _select_runs(manifest, runtimes)
    contract = manifest_contract(manifest)
    labels = manifest_labels(export_dir, manifest)
    inputs = build_inputs(contract, labels, samples, seed, images)
    reference_model = rebuild_reference(manifest, export_dir, weights, progress)
    started = time.perf_counter()
    reference = predict_logits(reference_model, inputs.tensors)
    reference_ms = (time.perf_counter() - started) * 1000 / len(inputs.tensors)
    floors = _Floors(reference_model, inputs.tensors, reference, enabled=atol is None)

    report = VerifyReport(
        export_dir=str(export_dir), arch=manifest["arch"], weights=manifest["weights"],
        samples=samples, images=len(inputs.sources) - samples, seed=seed,
        reference={"runtime": "torch eager", "ms_per_inference": reference_ms, "accuracy": accuracy(reference, inputs.targets),
                   "fp16_floor": None},
    )  # fmt: skip
    for key, record, runtime, required in selected:
        probabilities = ModelIO.from_record(record).probabilities
        expected = softmax(reference) if probabilities else reference
        floor = floors.get(probabilities) if record["precision"] == "fp16" else None
        checks = limits(record, expected, floor, atol)
        result = _verify_artifact(export_dir, key, record, runtime, contract, inputs, expected, checks, threads, manifest)
        result.required = required
        if (locate and result.status in ("pass", "fail")) or (locate is None and result.status == "fail"):
            _locate(result, reference_model, manifest, record, inputs, expected, checks, progress)
        report.runtimes.append(result)
    report.reference["fp16_floor"] = floors.logits_floor()
    for path in device_reports:
        report.runtimes.append(judge_device_report(path, export_dir, manifest, reference_model, RuntimeReport))
    return report


class _Floors:
    """The fp16 floor of the reference on the verify inputs, measured once per output kind, when needed."""

    def __init__(self, model, inputs: np.ndarray, reference: np.ndarray, enabled: bool):
        self.model, self.inputs, self.reference, self.enabled = model, inputs, reference, enabled
        self.measured: dict[bool, Fp16Floor] = {}

    def get(self, probabilities: bool) -> Fp16Floor | None:
        if self.enabled and probabilities not in self.measured:
            expected = softmax(self.reference) if probabilities else self.reference
            self.measured[probabilities] = fp16_floor(self.model, self.inputs, expected, probabilities)
        return self.measured.get(probabilities)

    def logits_floor(self) -> dict | None:
        return self.measured[False].to_dict() if False in self.measured else None


def _locate(result: RuntimeReport, model, manifest, record, inputs, expected, checks: Limits, progress: bool) -> None:
    spread = float(expected.max() - expected.min()) or 1.0
    with Task(f"locating the first diverging unit of {result.key} in {result.runtime}", enabled=progress) as task:
        try:
            found = locate_divergence(model, manifest, record, result.runtime, inputs.tensors, checks.atol / spread,
                           lambda message: None)  # fmt: skip
        except Exception as exc:  # noqa: BLE001  (a converter or runtime failing on a part is a result to report)
            message = str(exc) if isinstance(exc, SdeployError) else f"{type(exc).__name__}: {str(exc)[:200]}"
            result.locate = {"error": message}
            task.done(f"not located: {message}")
            return
        result.first_divergent_unit = found.first_divergent_unit
        result.locate = found.to_dict()
        task.done(found.first_divergent_unit or "no unit diverges")


def _select_runs(manifest: dict, runtimes: list[str] | None) -> list[tuple[str, dict, str, bool]]:
    """(key, record, runtime, required) to verify: the asked runtimes (required), or each format's own (required)
    plus its installed cross-checks (not required: their known limits do not fail the export)."""
    artifacts = manifest["artifacts"]
    for name in runtimes or []:
        check_runtime_name(name)
    runs = []
    for key, record in artifacts.items():
        fmt = record["format"]
        if runtimes:
            runs += [(key, record, name, True) for name in runtimes if backend_for_runtime(name).format == fmt]
        else:
            runs.append((key, record, runtime_for(record), True))
            runs += [(key, record, name, False) for name in crosscheck_runtimes(fmt) if _installed(name)]
    if not runs:
        have = ", ".join(artifacts) or "none"
        raise SdeployError(f"the export has no artifact that runtime(s) {', '.join(runtimes or [])} can run (has: {have})")
    return runs


def _installed(runtime: str) -> bool:
    try:
        runner_class(runtime).check_available()
    except RuntimeUnavailable:
        return False
    return True


def build_inputs(contract: InputContract, labels: list[str], samples: int, seed: int, images: str | Path | None) -> VerifyInputs:
    if samples < 0:
        raise SdeployError(f"--samples must be 0 or more, got {samples}")
    tensors = [random_inputs(samples, contract, seed)] if samples else []
    sources = [f"random:{i}" for i in range(samples)]
    targets = [-1] * samples
    if images is not None:
        paths = list_images(images)
        if not paths:
            raise SdeployError(f"no images found in {images} (looked for {', '.join(('.jpg', '.png', '...'))})")
        index = {label: i for i, label in enumerate(labels)}
        # 8-bit pixels after resizing, as an app feeds them (see the module docstring).
        tensors.append(np.stack([preprocess_8bit(p, contract) for p in paths]))
        sources += [str(p) for p in paths]
        targets += [index.get(p.parent.name, -1) for p in paths]
    if not sources:
        raise SdeployError("nothing to verify with: use --samples N (N > 0) and/or --images DIR")
    labelled = np.array(targets)
    return VerifyInputs(np.concatenate(tensors), sources, labelled if (labelled >= 0).any() else None)


def _verify_artifact(export_dir, key, record, runtime, contract, inputs, reference, checks: Limits,
                     threads, manifest) -> RuntimeReport:  # fmt: skip
    report = RuntimeReport(key=key, runtime=runtime, precision=record["precision"], status="error")
    problem = check_artifact(export_dir, key, record).problem
    if problem:
        report.error = problem
        return report
    try:
        runner_type = runner_class(runtime)
        runner_type.check_available()
        known = runner_type.known_problem(record, manifest)
        if known:
            report.status, report.reason = "unsupported", known
            return report
        runner = runner_type(export_dir, record, contract, threads)
        report.description = runner.description
        runner.run(inputs.tensors[:1])  # warm-up: first calls allocate and plan
        started = time.perf_counter()
        outputs = runner.run(inputs.tensors)
        report.ms_per_inference = (time.perf_counter() - started) * 1000 / len(inputs.tensors)
    except RuntimeUnavailable as exc:
        report.status, report.error = "unavailable", f"not available: {exc}"
        return report
    except Exception as exc:  # a runtime that crashes on an artifact is a failed verification, with its reason
        report.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return report
    _score(report, outputs, reference, checks)
    report.accuracy = accuracy(outputs, inputs.targets)
    return report


def _score(report: RuntimeReport, outputs: np.ndarray, reference: np.ndarray, checks: Limits) -> None:
    if outputs.shape != reference.shape:
        report.error = f"output shape {outputs.shape} != reference {reference.shape}"
        return
    verdict = compare(outputs, reference, checks.atol, checks.min_cosine, 2 * checks.atol)
    report.atol = checks.atol
    report.min_cosine_allowed = checks.min_cosine
    report.tolerance_rule = checks.rule
    report.max_abs_error = verdict.max_abs_error
    report.max_rel_error = verdict.max_rel_error
    report.min_cosine = verdict.min_cosine
    report.top1_agreement = verdict.top1_agreement
    report.top5_overlap = verdict.topk_overlap
    report.decisive_top1_agreement = verdict.decisive_top1_agreement
    report.status = "pass" if verdict.passed else "fail"
    report.reason = verdict.reason


def accuracy(logits: np.ndarray, targets: np.ndarray | None) -> float | None:
    if targets is None:
        return None
    labelled = targets >= 0
    return float((logits[labelled].argmax(1) == targets[labelled]).mean())
