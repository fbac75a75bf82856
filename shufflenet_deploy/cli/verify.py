"""``sdeploy verify``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..backends import runtime_names
from ..fsutil import write_text_atomic
from ..tables import format_table
from ..verify import verify
from .common import FiniteFloat, SEED, THREADS, echo_json, main


@main.command("verify")
@click.argument("export_dir", type=click.Path(file_okay=False))
@click.option("--images", type=click.Path(file_okay=False),
              help="Also verify on these images (a labelled class-per-folder tree adds accuracy).")
@click.option("--samples", type=click.IntRange(0, 10_000), default=8, show_default=True, help="Seeded synthetic inputs.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the synthetic inputs.")
@click.option("--atol", type=FiniteFloat(0.0), default=None,
              help="Absolute logit tolerance for every runtime (default: per precision, relative to the logit range).")
@click.option("--runtime", "runtimes", multiple=True, type=click.Choice(runtime_names()),
              help="Only these runtimes (repeatable; default: each artifact's own runtime plus every installed "
                   "second runtime of its format).")
@click.option("--threads", type=THREADS, default=None, help="Threads per runtime (default: the runtime's).")
@click.option("--weights", "weights", type=click.Path(dir_okay=False), default=None,
              help="The checkpoint a --weights PATH export was made from, when the export's copy is gone.")
@click.option("--locate/--no-locate", "locate", default=None,
              help="Find the first unit of the network whose output diverges, by re-exporting the network cut after "
                   "probed units: --locate for every artifact, --no-locate never (default: for artifacts that fail).")
@click.option("--device-report", "device_reports", multiple=True, type=click.Path(dir_okay=False),
              help="A demo app's self-test result (JSON, from its Self-test action): checked against this export and "
                   "added as a row (repeatable).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the full report as JSON to this file ('-' for stdout).")
@click.option("--quiet", "-q", is_flag=True, help="No table; the exit code says pass (0) or fail (1).")
def verify_command(export_dir, images, samples, seed, atol, runtimes, threads, weights, locate, device_reports, json_path,
                   quiet) -> None:  # fmt: skip
    """Check every artifact of an export against eager PyTorch; exit code 0 only if all pass."""
    report = verify(export_dir, images=images, samples=samples, seed=seed, atol=atol, runtimes=list(runtimes) or None,
                    threads=threads, weights=weights, locate=locate, device_reports=list(device_reports),
                    progress=not quiet)  # fmt: skip
    if json_path == "-":
        echo_json(report.to_dict())
    elif json_path:
        write_text_atomic(Path(json_path), json.dumps(report.to_dict(), indent=2) + "\n")
    if not quiet and json_path != "-":
        click.echo(_verify_table(report))
    if not report.passed:
        counted = [r for r in report.runtimes if r.status != "pass" and (r.required or r.status != "unsupported")]
        failed = ", ".join(f"{r.key} in {r.runtime} ({r.status})" for r in counted)
        click.echo(f"Error: verification failed: {failed or 'the export has no artifact to verify'}", err=True)
        sys.exit(1)


def _located(found: dict) -> str:
    if "error" in found:
        return f"could not locate the divergence: {found['error']}"
    if not found["first_divergent_unit"]:
        return found["note"]
    at, before = found["at"], found["before"]
    text = f"first divergent unit {at['unit']}: relative error {at['max_rel_error']:.2e} there (limit {at['threshold']:.2g})"
    if before:
        text += f", {before['max_rel_error']:.2e} after {before['unit']} (limit {before['threshold']:.2g})"
    return text


def _verify_table(report) -> str:
    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    labelled = report.reference["accuracy"] is not None
    rows = []
    for r in report.runtimes:
        row = [r.key, r.runtime, r.precision, num(r.max_abs_error, ".2e"), num(r.atol, ".1e"), num(r.max_rel_error, ".1e"),
               num(r.min_cosine, ".6f"), num(r.top1_agreement, ".0%"), num(r.top5_overlap, ".0%"),
               num(r.ms_per_inference, ".2f")]  # fmt: skip
        if labelled:
            row.append(num(r.accuracy, ".1%"))
        rows.append([*row, r.status.upper()])
    headers = ["artifact", "runtime", "prec", "max abs", "atol", "rel", "cosine", "top-1", "top-5", "ms"]
    headers += ["accuracy"] if labelled else []
    lines = [
        f"{report.arch}: {report.samples} synthetic + {report.images} image input(s), {report.weights['kind']} weights",
        format_table([*headers, "verdict"], rows, right=tuple(range(3, len(headers)))),
    ]
    reference = f"reference: torch eager, {report.reference['ms_per_inference']:.2f} ms/inference"
    if labelled:
        reference += f", accuracy {report.reference['accuracy']:.1%}"
    lines.append(reference)
    for r in report.runtimes:
        if r.description:
            lines.append(f"{r.key}: {r.description}")
        if r.error or r.reason:
            lines.append(f"{r.key} ({r.runtime}): {r.status.upper()}: {r.error or r.reason}")
        if r.locate:
            lines.append(f"{r.key} ({r.runtime}): {_located(r.locate)}")
    lines.append("PASSED" if report.passed else "FAILED")
    return "\n".join(lines)
