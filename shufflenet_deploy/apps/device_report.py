"""``sdeploy verify --device-report FILE``: judge an app's on-device self-test result against this export.

A report is untrusted input.  Its verdict is ignored: the images are found
again by their pixel hash in sdeploy's own self-test set, eager PyTorch
recomputes what they should give, the report's ``expected`` values must be
those (a tampered or foreign self-test fails), and its ``output`` values are
judged with the tolerance ``bundle`` wrote for the artifact.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .. import parity
from ..errors import SdeployError
from ..fsutil import read_json_file
from ..manifest import manifest_contract
from .selftest import REPORT_SCHEMA, app_expected, pixels_sha256, selftest_images

MAX_REPORT_BYTES = 8 << 20
MAX_IMAGES = 64
#: The report's ``expected`` must equal eager's to this share of the range: they are JSON copies of the same floats.
EXPECTED_REL_MATCH = 1e-5
_LABEL = re.compile(r"[^\w .,:;()/+#@-]")


def judge_device_report(path: str | Path, export_dir: Path, manifest: dict, model, report_type):
    """One parity-table row (``report_type``, verify's RuntimeReport) for the device report at ``path``."""
    data = read_device_report(Path(path))
    key, record = _artifact(manifest, data["sha256"], path)
    row = report_type(key=key, runtime=_row_name(data), precision=record["precision"], status="error",
                      description=f"device report {Path(path).name}: {_text(data.get('runtime'))}")  # fmt: skip
    images = _images(data["images"], path)
    expected, tolerance = app_expected(model, [image for image, _ in images], manifest_contract(manifest), record)
    reported = np.array([entry["expected"] for _, entry in images], dtype=np.float64)
    outputs = np.array([entry["output"] for _, entry in images], dtype=np.float64)
    if reported.shape != expected.shape or outputs.shape != expected.shape:
        row.error = f"the report has {reported.shape[1:]} values per image, the model {expected.shape[1:]}"
        return row
    spread = float(expected.max() - expected.min()) or 1.0
    tampered = float(np.abs(reported - expected).max())
    if tampered > EXPECTED_REL_MATCH * spread:
        row.status = "fail"
        row.reason = (f"the report's expected values differ from eager PyTorch by up to {tampered:.3g}: its selftest.json "
                      "was changed or comes from another model")  # fmt: skip
        return row
    verdict = parity.compare(outputs, expected, tolerance["atol"], tolerance["min_cosine"], tolerance["decisive_margin"])
    row.status, row.reason = ("pass" if verdict.passed else "fail"), verdict.reason
    row.atol, row.max_abs_error, row.max_rel_error = tolerance["atol"], verdict.max_abs_error, verdict.max_rel_error
    row.min_cosine, row.top1_agreement = verdict.min_cosine, verdict.top1_agreement
    row.decisive_top1_agreement, row.top5_overlap = verdict.decisive_top1_agreement, verdict.topk_overlap
    row.ms_per_inference = _number(data.get("median_ms"))
    row.tolerance_rule = tolerance["rule"]
    return row


def read_device_report(path: Path) -> dict:
    data = read_json_file(path, "--device-report", MAX_REPORT_BYTES)
    if not isinstance(data, dict) or data.get("schema") != REPORT_SCHEMA:
        raise SdeployError(f"--device-report {path} is not a device report (expected schema {REPORT_SCHEMA})")
    if not isinstance(data.get("sha256"), str) or not isinstance(data.get("images"), list) or not data["images"]:
        raise SdeployError(f"--device-report {path} has no sha256 or no images")
    return data


def _artifact(manifest: dict, sha256: str, path) -> tuple[str, dict]:
    for key, record in manifest["artifacts"].items():
        if record["sha256"] == sha256:
            return key, record
    raise SdeployError(f"--device-report {path} is for a model with sha256 {sha256[:12]}..., which is not an artifact "
                       "of this export; bundle this export again and rerun the self-test")  # fmt: skip


def _images(entries: list, path) -> list[tuple[np.ndarray, dict]]:
    if len(entries) > MAX_IMAGES:
        raise SdeployError(f"--device-report {path} lists {len(entries)} images; a self-test has a few")
    known = {pixels_sha256(pixels): pixels for _, _, pixels in selftest_images()}
    found = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("pixels_sha256") not in known:
            name = entry.get("name") if isinstance(entry, dict) else entry
            raise SdeployError(f"--device-report {path}: image {str(name)[:40]!r} is not in sdeploy's self-test set "
                               "(made by another version?)")  # fmt: skip
        for field in ("expected", "output"):
            if not isinstance(entry.get(field), list) or not all(_is_number(v) for v in entry[field]):
                raise SdeployError(f"--device-report {path}: image {entry.get('name')!r} has no numeric '{field}' list")
        found.append((known[entry["pixels_sha256"]], entry))
    return found


def _row_name(data: dict) -> str:
    parts = [_text(data.get(name)) for name in ("app", "device", "accelerator")]
    return " · ".join(part for part in parts if part) or "device"


def _text(value) -> str:
    """A report's free text, shortened and stripped of anything but plain characters."""
    return _LABEL.sub("", str(value))[:60] if value is not None else ""


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _number(value) -> float | None:
    return float(value) if _is_number(value) else None


__all__ = ["judge_device_report", "read_device_report"]
