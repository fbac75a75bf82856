"""``sdeploy export``: its options come from the backend records, grouped by backend in ``--help``."""

from __future__ import annotations

import sys

import click

from ..backends import target_backends
from ..export import export
from ..preprocess import check_img_size
from ..tables import format_table, human_bytes
from .common import (
    IMG_SIZE,
    GroupedCommand,
    GroupedOption,
    apply,
    echo_json,
    export_option_decorators,
    main,
    target_choice_metavar,
    weights_options,
)


def _targets_help() -> str:
    lines = "; ".join(f"{b.name}: {b.files}" for b in target_backends())
    return f"Format(s) to export; repeat or comma-separate ({lines})."


def _export_command(func):
    decorators = [
        click.option("--arch", help="Architecture (see 'sdeploy list'); optional when --weights is a checkpoint "
                     "that names it."),
        click.option("--target", "targets", multiple=True, required=True, metavar=target_choice_metavar(),
                     help=_targets_help()),
        weights_options,
        click.option("--labels", type=click.Path(dir_okay=False),
                     help="Class names, one per line (default: ImageNet or the checkpoint's)."),
        click.option("--out", type=click.Path(file_okay=False), help="Output directory (default: exports/<arch>)."),
        click.option("--force", is_flag=True, help="Replace an export of another model in --out, and its artifacts."),
        click.option("--img-size", type=IMG_SIZE, default=None, help="Input size, 32 to 2048 (default: the weights' own)."),
        *export_option_decorators(),
        click.option("--quiet", "-q", is_flag=True, help="No progress and no summary table; errors only.",
                     cls=GroupedOption, group="Output"),
        click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.",
                     cls=GroupedOption, group="Output"),
        click.option("--verbose", "-v", is_flag=True, help="Show the converters' own output.", cls=GroupedOption,
                     group="Output"),
    ]  # fmt: skip
    return main.command("export", cls=GroupedCommand)(apply(decorators, func))


@_export_command
def export_command(arch, targets, weights, num_classes, seed, labels, out, force, img_size, quiet, as_json, verbose,
                   **options) -> None:  # fmt: skip
    """Export an architecture to one or more formats, with a manifest (sdeploy.json).

    \b
    Examples:
      sdeploy export --arch v2_x0_5 --target coreml
      sdeploy export --arch v2_x0_5 --target onnx,coreml --quantize int8 --calib images/
    """
    if img_size is not None:
        check_img_size(img_size)
    result = export(arch, targets, weights=weights, out=out, img_size=img_size, num_classes=num_classes, labels=labels,
                    seed=seed, force=force, progress=not quiet, verbose=verbose, **options)  # fmt: skip
    if as_json:
        echo_json(result.to_dict())
    elif not quiet:
        click.echo(_export_summary(result))
    failures = [r for r in result.results if r.status == "failed"]
    if failures:
        names = ", ".join(f"{r.target} ({r.error})" for r in failures)
        click.echo(f"Error: export failed for {names}", err=True)
        sys.exit(1)


def _export_summary(result) -> str:
    rows = [
        (r.target, r.status, r.path or "-", r.precision or "-", human_bytes(r.size) if r.size else "-", f"{r.seconds:.1f}s")
        for r in result.results
    ]
    lines = [format_table(("target", "status", "artifact", "precision", "size", "time"), rows, right=(4, 5))]
    for r in result.results:
        lines += [f"note ({r.target}): {note}" for note in r.notes]
    lines += [f"note: {note}" for note in result.notes]
    if result.manifest_path:
        lines.append(f"manifest: {result.manifest_path}")
    return "\n".join(lines)
