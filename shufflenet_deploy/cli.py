"""The ``sdeploy`` command line: argument parsing and printing only; the work lives in the library."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click
import numpy as np

from . import __version__
from .complexity import count_mflops, unit_summaries
from .errors import SdeployError
from .export import export
from .nets import get_arch, list_models
from .nets.registry import ArchSpec, arch_to_dict
from .predict import predict_logits, top_k
from .preprocess import MIN_IMG_SIZE, check_img_size, preprocess
from .tables import format_table, human_bytes
from .targets.base import CORE_ML_MIN_IOS, DEFAULT_OPSET
from .zoo import load_model


class CliError(click.ClickException):
    """Printed by click as one ``Error: ...`` line on stderr, no traceback."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class SdeployGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SdeployError as exc:
            raise CliError(str(exc), exc.exit_code) from None


@click.group(cls=SdeployGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="sdeploy")
def main() -> None:
    """Export ShuffleNet V1/V2 classifiers to ONNX, TorchScript Mobile, Core ML and NCNN, and prove they are right."""


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2))


# ---------------------------------------------------------------- list


@main.command("list")
@click.option("--family", type=click.Choice(["v1", "v2"]), help="Only one family.")
@click.option("--pretrained", is_flag=True, help="Only architectures with downloadable weights.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(family: str | None, pretrained: bool, as_json: bool) -> None:
    """List architectures with params, MFLOPs and published weights."""
    specs = [get_arch(name) for name in list_models(family, True if pretrained else None)]
    if as_json:
        echo_json([arch_to_dict(spec) for spec in specs])
        return
    rows = [
        (
            s.name,
            s.width_label,
            s.groups or "-",
            f"{s.params / 1e6:.2f}M",
            f"{s.mflops:.1f}",
            s.published_mflops or "-",
            f"{s.reference.top1:.1f}" if s.reference else "-",
            _weights_label(s),
        )
        for s in specs
    ]
    headers = ("arch", "width", "groups", "params", "MFLOPs", "paper", "top-1", "weights")
    click.echo(format_table(headers, rows, right=(3, 4, 5, 6)))
    click.echo("\nMFLOPs: multiply-adds at 224x224. weights: 'imagenet' downloads with --weights imagenet; "
               "'manual' means an official checkpoint exists that you download yourself.")


def _weights_label(spec: ArchSpec) -> str:
    if spec.pretrained:
        return "imagenet"
    return "manual" if spec.manual_weights else "-"


# ---------------------------------------------------------------- info


@main.command("info")
@click.argument("arch")
@click.option("--img-size", type=click.IntRange(min=MIN_IMG_SIZE), default=224, show_default=True,
              help="Input size for the per-unit shapes and MFLOPs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def info_command(arch: str, img_size: int, as_json: bool) -> None:
    """Show an architecture's details, input contract and per-unit layer summary."""
    spec = get_arch(arch)
    model = spec.build(1000).eval()
    units = unit_summaries(model, img_size)
    contract = spec.contract.at_size(img_size)
    if as_json:
        data = arch_to_dict(spec)
        data["input_contract"] = contract.to_dict()
        data["mflops_at_img_size"] = round(count_mflops(model, img_size), 2)
        data["units"] = [
            {"name": u.name, "output_shape": list(u.output_shape), "params": u.params, "mflops": round(u.macs / 1e6, 3)}
            for u in units
        ]
        echo_json(data)
        return
    click.echo(_describe(spec))
    click.echo(_describe_contract(contract))
    rows = [(u.name, "x".join(map(str, u.output_shape)), f"{u.params:,}", f"{u.macs / 1e6:.2f}") for u in units]
    rows.append(("total", "", f"{spec.params:,}", f"{sum(u.macs for u in units) / 1e6:.2f}"))
    click.echo(f"\nLayers at {img_size}x{img_size} (one row per unit):")
    click.echo(format_table(("unit", "output (CxHxW)", "params", "MFLOPs"), rows, right=(2, 3)))


def _describe(spec: ArchSpec) -> str:
    family = {"v1": "ShuffleNet V1", "v2": "ShuffleNet V2"}[spec.family]
    groups = f", groups={spec.groups}" if spec.groups else ""
    lines = [
        f"{spec.name}: {family} {spec.width_label}{groups}",
        f"  channels (stem, stages{', conv5' if spec.family == 'v2' else ''}): {', '.join(map(str, spec.channels))}",
        f"  params: {spec.params:,}   MFLOPs at 224: {spec.mflops:.2f}"
        + (f" (published: {spec.published_mflops})" if spec.published_mflops else ""),
    ]
    if spec.reference:
        top5 = f", top-5 {spec.reference.top5}" if spec.reference.top5 is not None else ""
        lines.append(f"  ImageNet accuracy: top-1 {spec.reference.top1}{top5} ({spec.reference.source})")
    if spec.pretrained:
        lines.append(f"  weights: --weights imagenet downloads {spec.pretrained.url}")
    elif spec.manual_weights:
        lines.append(f"  weights: {spec.manual_weights}")
    else:
        lines.append("  weights: none published; use --weights random or --weights PATH")
    return "\n".join(lines)


def _describe_contract(contract) -> str:
    mean = ", ".join(f"{v:g}" for v in contract.mean)
    std = ", ".join(f"{v:g}" for v in contract.std)
    return "\n".join([
        "Input contract:",
        f"  {contract.layout} float32, 1x3x{contract.img_size}x{contract.img_size}, {contract.color_order}",
        f"  resize shorter side to {contract.resize_size} ({contract.interpolation}), "
        f"{contract.crop} crop {contract.img_size}",
        f"  value = (pixel * {contract.scale:.6g} - mean) / std, mean = ({mean}), std = ({std})",
    ])


# ---------------------------------------------------------------- classify


def weights_options(func):
    """--weights/--num-classes/--seed, shared by every command that builds a model."""
    func = click.option("--seed", type=int, default=0, show_default=True,
                        help="Seed for --weights random.")(func)
    func = click.option("--num-classes", type=click.IntRange(min=1), default=None,
                        help="Classifier size (default: from the weights, else 1000).")(func)
    func = click.option("--weights", "weights", default="imagenet", show_default=True, metavar="imagenet|random|none|PATH",
                        help="Pretrained download, seeded random init, PyTorch default init, or a checkpoint file.")(func)
    return func


@main.command("classify")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--arch", help="Architecture (optional when the checkpoint names it).")
@weights_options
@click.option("--img-size", type=click.IntRange(min=MIN_IMG_SIZE), default=None,
              help="Input size (default: the weights' own, usually 224).")
@click.option("--topk", type=click.IntRange(min=1), default=5, show_default=True, help="Classes to show per image.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def classify_command(images, arch, weights, num_classes, seed, img_size, topk, as_json) -> None:
    """Classify images with eager PyTorch: the reference answer for every exported artifact."""
    loaded = load_model(arch, weights, num_classes=num_classes, seed=seed, img_size=img_size)
    contract = loaded.weights.contract
    batch = np.stack([preprocess(path, contract) for path in images])
    logits = predict_logits(loaded.model, batch)
    results = {path: top_k(row, loaded.weights.labels, min(topk, loaded.weights.num_classes)) for path, row in zip(images, logits, strict=True)}
    if as_json:
        echo_json({path: [asdict(p) for p in preds] for path, preds in results.items()})
        return
    for path, preds in results.items():
        click.echo(f"{path} ({loaded.arch.name}, {loaded.weights.kind} weights):")
        for p in preds:
            click.echo(f"  {p.probability:7.2%}  {p.label} ({p.index})")


# ---------------------------------------------------------------- export


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
@click.option("--keep-intermediate", is_flag=True, help="Keep pnnx's intermediate files (in <arch>.pnnx/).")
@click.option("--author", default="shufflenet-deploy", show_default=True, help="Author written into artifact metadata.")
@click.option("--license", "license_", default=None, help="License written into artifact metadata (default: the weights').")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary table; errors only.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.option("--verbose", "-v", is_flag=True, help="Show the converters' own output.")
def export_command(arch, targets, weights, num_classes, seed, labels, out, img_size, batch, dynamic_batch, half, opset,
                   bytecode_version, precision, min_ios, coreml_mode, keep_intermediate, author, license_, quiet,
                   as_json, verbose) -> None:  # fmt: skip
    """Export an architecture to ONNX, TorchScript Mobile, Core ML and/or NCNN, with a manifest.

    Example: sdeploy export --arch v2_x0_5 --target coreml
    """
    if img_size is not None:
        check_img_size(img_size)
    result = export(
        arch, targets, weights=weights, out=out, img_size=img_size, num_classes=num_classes, labels=labels,
        seed=seed, progress=not quiet, verbose=verbose, batch=batch, dynamic_batch=dynamic_batch, half=half,
        opset=opset, bytecode_version=bytecode_version, precision=precision, min_ios=min_ios,
        coreml_mode=coreml_mode, keep_intermediate=keep_intermediate, author=author, license=license_,
    )  # fmt: skip
    if as_json:
        echo_json(result.to_dict())
    elif not quiet:
        click.echo(_export_summary(result))
    for failure in (r for r in result.results if r.status != "ok"):
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
