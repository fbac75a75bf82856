"""``verify --locate``: the first unit of the network whose output diverges in an artifact's runtime.

The network is cut after unit k (``nets.common.Truncated``: a plain
tensor-in, tensor-out model) and exported with the artifact's own backend
and recorded options, then run in the same runtime on the same inputs and
compared with eager PyTorch cut at the same place.  Bisection over the units
finds the first k whose error is over the threshold, in about log2(units)
exports.  Nothing here knows any backend: each export goes through the
backend's own exporter, so the truncated artifacts are made exactly as the
real one was (Core ML in tensor mode, which its record asks for).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .backends import ExportContext, ExportOptions, format_backend, runner_class
from .backends.calibration import load_calibration
from .errors import SdeployError
from .manifest import artifact_record, manifest_contract
from .nets.common import Truncated
from .sysutil import TORCH_LOGGERS, captured_output, private_tempdir
from .tolerances import fp16_floor, fp16_rule

#: Inputs used per probe: enough to see a divergence, few enough to keep each export-and-run quick.
LOCATE_INPUTS = 4


@dataclass
class UnitError:
    unit: str
    index: int  # position in units(), from 0
    max_abs_error: float
    max_rel_error: float  # over the range of eager's output at that unit
    threshold: float  # the relative error that counts as diverged at this unit

    @property
    def diverged(self) -> bool:
        return self.max_rel_error > self.threshold


@dataclass
class LocateResult:
    first_divergent_unit: str | None
    rule: str  # what counts as diverged
    before: UnitError | None
    at: UnitError | None
    probes: list[UnitError]
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def locate(model: nn.Module, manifest: dict, record: dict, runtime: str, inputs: np.ndarray, threshold: float,
           progress: Callable[[str], None] = lambda _: None) -> LocateResult:  # fmt: skip
    """Bisect the units of ``model`` for the first whose output in ``runtime`` diverges.

    Diverged means a relative error over ``threshold`` (the artifact's own
    tolerance); for an fp16 artifact, over the format's multiple of the fp16
    floor of the network cut at that unit, as verify judges the whole network.
    """
    if "options" not in record:
        raise SdeployError("--locate needs the export options recorded in the manifest, which this export predates; "
                           "re-export it with this sdeploy")  # fmt: skip
    names = [name for name, _ in model.units()]
    fp16_multiple = fp16_rule(record).abs_multiple if record["precision"] == "fp16" else None
    rule = (f"relative error over {fp16_multiple:g}x the fp16 floor of the network up to the unit" if fp16_multiple
            else f"relative error over {threshold:.2g}")  # fmt: skip
    probe = _Prober(model, manifest, record, runtime, inputs[:LOCATE_INPUTS], threshold, fp16_multiple, progress)
    low, high = 0, len(names) - 1  # invariant: units before `low` are fine; unit `high` diverges
    if not probe(high).diverged:
        return LocateResult(None, rule, None, None, probe.seen,
                            "the network re-exported now matches eager at every probe: the artifact differs from what "
                            "this exporter makes (changed after export, or made by another version)")  # fmt: skip
    while low < high:
        middle = (low + high) // 2
        if probe(middle).diverged:
            high = middle
        else:
            low = middle + 1
    before = probe(high - 1) if high > 0 else None
    return LocateResult(names[high], rule, before, probe(high), probe.seen)


class _Prober:
    """Error of the network cut after unit k, in the artifact's runtime; each k is exported once."""

    def __init__(self, model, manifest, record, runtime, inputs, threshold, fp16_multiple, progress):
        self.model, self.manifest, self.record, self.runtime = model, manifest, record, runtime
        self.inputs, self.threshold, self.fp16_multiple, self.progress = inputs, threshold, fp16_multiple, progress
        self.cache: dict[int, UnitError] = {}

    @property
    def seen(self) -> list[UnitError]:
        return [self.cache[k] for k in sorted(self.cache)]

    def __call__(self, index: int) -> UnitError:
        if index not in self.cache:
            part = Truncated(self.model, index + 1).eval()
            self.progress(f"probing {part.names[-1]} (unit {index + 1} of {len(self.model.units())})")
            with torch.no_grad():
                expected = part(torch.from_numpy(self.inputs)).numpy().reshape(len(self.inputs), -1)
            actual = self._run_exported(part).reshape(len(self.inputs), -1)
            spread = float(expected.max() - expected.min()) or 1.0
            error = float(np.abs(actual.astype(np.float64) - expected).max()) if actual.shape == expected.shape else np.inf
            threshold = self.threshold
            if self.fp16_multiple:
                floor = fp16_floor(part, self.inputs, expected.reshape(len(self.inputs), -1))
                threshold = max(self.fp16_multiple * floor.max_abs_error / spread, self.threshold)
            self.cache[index] = UnitError(part.names[-1], index, error, error / spread, threshold)
        return self.cache[index]

    def _run_exported(self, part: nn.Module) -> np.ndarray:
        backend = format_backend(self.record["format"])
        # Parts of the network take and return plain tensors, whatever I/O the artifact itself has.
        plain = {"batch": 1, "dynamic_batch": False, "embed_preprocess": False, "layout": None, "softmax": False}
        options = {**self.record["options"], **backend.locate_options, **plain}
        export_options = ExportOptions(**options)
        with tempfile.TemporaryDirectory(prefix="sdeploy-locate-") as tmp:
            staging = Path(tmp) / "artifact"
            staging.mkdir()
            ctx = ExportContext(model=part, arch=self.manifest["arch"], contract=manifest_contract(self.manifest),
                                labels=[str(i) for i in range(self.manifest["num_classes"])], options=export_options,
                                metadata={"sdeploy_version": "", "author": "", "license": "", "description": ""},
                                staging=staging, calibration=_calibration(export_options, self.manifest))  # fmt: skip
            with captured_output(io.StringIO(), TORCH_LOGGERS + backend.loggers), private_tempdir(Path(tmp) / "tmp"):
                artifact = backend.target.export(ctx)
            record = artifact_record(artifact, staging)
            runner = runner_class(self.runtime)(staging, record, ctx.contract)
            return np.concatenate([np.asarray(runner.run(row[None]), np.float32) for row in self.inputs])


def _calibration(options: ExportOptions, manifest: dict):
    if not options.int8:
        return None
    if options.calib is None or not Path(options.calib).is_dir():
        raise SdeployError(f"--locate on an int8 artifact re-calibrates with its images ({options.calib}), which are gone")
    return load_calibration(options.calib, manifest_contract(manifest), options.calib_samples)
