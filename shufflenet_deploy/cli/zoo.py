"""``sdeploy list``, ``info`` and ``classify``: browse the architectures and run the eager reference."""

from __future__ import annotations

from dataclasses import asdict

import click
import numpy as np

from ..complexity import count_mflops, unit_summaries
from ..nets import get_arch, list_models
from ..nets.registry import ArchSpec, arch_to_dict
from ..predict import predict_logits, top_k
from ..preprocess import check_image_file, preprocess
from ..tables import format_table
from ..zoo import load_model
from .common import IMG_SIZE, echo_json, main, weights_options


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

@main.command("info")
@click.argument("arch")
@click.option("--img-size", type=IMG_SIZE, default=224, show_default=True,
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
        (f"  resize shorter side to {contract.resize_size} ({contract.interpolation}), "
        f"{contract.crop} crop {contract.img_size}"),
        f"  value = (pixel * {contract.scale:.6g} - mean) / std, mean = ({mean}), std = ({std})",
    ])

@main.command("classify")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--arch", help="Architecture (optional when the checkpoint names it).")
@weights_options
@click.option("--img-size", type=IMG_SIZE, default=None,
              help="Input size (default: the weights' own, usually 224).")
@click.option("--topk", type=click.IntRange(1, 1000), default=5, show_default=True, help="Classes to show per image.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def classify_command(images, arch, weights, num_classes, seed, img_size, topk, as_json) -> None:
    """Classify images with eager PyTorch: the reference answer for every exported artifact."""
    for path in images:  # before any weights are downloaded or built
        check_image_file(path)
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
