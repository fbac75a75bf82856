"""``sdeploy export``."""

from __future__ import annotations

import sys

import click

from ..export import export
from ..preprocess import check_img_size
from ..tables import format_table, human_bytes
from ..targets.base import CORE_ML_MIN_IOS, DEFAULT_OPSET
from ..targets.quantize import DEFAULT_CALIB_SAMPLES, QUANTIZE_CHOICES
from .common import echo_json, main, weights_options


@main.command("export")
@click.option("--arch", help="Architecture (see 'sdeploy list'); optional when --weights is a checkpoint that names it.")
@click.option("--target", "targets", multiple=True, required=True, metavar="onnx|torchscript|coreml|ncnn|all",
              help="Format(s) to export; repeat or comma-separate.")
@weights_options
@click.option("--labels", type=click.Path(dir_okay=False), help="Class names, one per line (default: ImageNet or the checkpoint's).")
@click.option("--out", type=click.Path(file_okay=False), help="Output directory (default: exports/<arch>).")
@click.option("--img-size", type=int, default=None, help="Input size, 32 or more (default: the weights' own, 224).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size of the exported input.")
@click.option("--dynamic-batch", is_flag=True, help="Any batch size at run time (onnx, torchscript, coreml tensor mode).")
@click.option("--half", is_flag=True, help="fp16 weights where the format supports it (onnx, ncnn); fp32 inputs and outputs.")
@click.option("--opset", type=int, default=DEFAULT_OPSET, show_default=True,
              help="ONNX opset; below 18 uses the TorchScript-based exporter.")
@click.option("--bytecode-version", type=int, default=None,
              help="Backport the .ptl to this lite-interpreter bytecode version (8 for pytorch_android_lite 1.13).")
@click.option("--precision", type=click.Choice(["fp16", "fp32"]), default="fp16", show_default=True,
              help="Core ML compute precision.")
@click.option("--min-ios", type=click.Choice(list(CORE_ML_MIN_IOS)), default="15", show_default=True,
              help="Core ML minimum deployment target.")
@click.option("--coreml-mode", type=click.Choice(["classifier", "tensor"]), default="classifier", show_default=True,
              help="classifier: image in, classLabel + probabilities out; tensor: normalised tensor in, logits out.")
@click.option("--quantize", type=click.Choice(list(QUANTIZE_CHOICES)), default="none", show_default=True,
              help="int8: static int8 ONNX (needs --calib) and int8-weight Core ML (iOS 16+); "
                   "ncnn and torchscript are skipped with a note.")
@click.option("--calib", type=click.Path(), default=None, metavar="DIR",
              help="Calibration images for --quantize int8: typical inputs in any folder tree (a few hundred).")
@click.option("--calib-samples", type=click.IntRange(min=1), default=DEFAULT_CALIB_SAMPLES, show_default=True,
              help="Use at most this many --calib images, spread evenly over the sorted folder tree.")
@click.option("--keep-intermediate", is_flag=True, help="Keep pnnx's intermediate files (in <arch>.pnnx/).")
@click.option("--author", default="shufflenet-deploy", show_default=True, help="Author written into artifact metadata.")
@click.option("--license", "license_", default=None, help="License written into artifact metadata (default: the weights').")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary table; errors only.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.option("--verbose", "-v", is_flag=True, help="Show the converters' own output.")
def export_command(arch, targets, weights, num_classes, seed, labels, out, img_size, batch, dynamic_batch, half, opset,
                   bytecode_version, precision, min_ios, coreml_mode, quantize, calib, calib_samples, keep_intermediate,
                   author, license_, quiet, as_json, verbose) -> None:  # fmt: skip
    """Export an architecture to ONNX, TorchScript Mobile, Core ML and/or NCNN, with a manifest.

    \b
    Examples:
      sdeploy export --arch v2_x0_5 --target coreml
      sdeploy export --arch v2_x0_5 --target onnx,coreml --quantize int8 --calib images/
    """
    if img_size is not None:
        check_img_size(img_size)
    result = export(
        arch, targets, weights=weights, out=out, img_size=img_size, num_classes=num_classes, labels=labels,
        seed=seed, progress=not quiet, verbose=verbose, batch=batch, dynamic_batch=dynamic_batch, half=half,
        opset=opset, bytecode_version=bytecode_version, precision=precision, min_ios=min_ios,
        coreml_mode=coreml_mode, quantize=quantize, calib=calib, calib_samples=calib_samples,
        keep_intermediate=keep_intermediate, author=author, license=license_,
    )  # fmt: skip
    if as_json:
        echo_json(result.to_dict())
    elif not quiet:
        click.echo(_export_summary(result))
    for failure in (r for r in result.results if r.status == "failed"):
        if quiet or as_json:
            click.echo(f"Error: {failure.target}: {failure.error}", err=True)
    if not result.ok:
        sys.exit(1)


def _export_summary(result) -> str:
    rows = [
        (r.target, r.status, r.path or "-", r.precision or "-", human_bytes(r.size) if r.size else "-", f"{r.seconds:.1f}s")
        for r in result.results
    ]
    lines = [format_table(("target", "status", "artifact", "precision", "size", "time"), rows, right=(4, 5))]
    for r in result.results:
        lines += [f"note ({r.target}): {note}" for note in r.notes]
        if r.error:
            lines.append(f"failed ({r.target}): {r.error}")
    lines += [f"note: {note}" for note in result.notes]
    if result.manifest_path:
        lines.append(f"manifest: {result.manifest_path}")
    return "\n".join(lines)
