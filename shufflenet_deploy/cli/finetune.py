"""``sdeploy finetune``."""

from __future__ import annotations

import click

from ..training.finetune import DEFAULT_LR, DEFAULT_WEIGHT_DECAY, OPTIMIZERS, finetune

from .common import FiniteFloat, IMG_SIZE, SEED, THREADS, echo_json, main


@main.command("finetune")
@click.option("--arch", help="Architecture (see 'sdeploy list'); optional when --weights is a checkpoint that names it.")
@click.option("--data", required=True, type=click.Path(file_okay=False),
              help="Training images, one subfolder per class (its name is the label).")
@click.option("--epochs", required=True, type=click.IntRange(1, 100_000), help="Passes over the training images (1 or more).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Checkpoint to write (with arch, labels and input contract; 'sdeploy export --weights' reads it).")
@click.option("--weights", default="imagenet", show_default=True, metavar="imagenet|random|none|PATH",
              help="Start from the published weights (new classifier), from scratch (sdeploy's seeded init or "
                   "PyTorch's default init), or from a checkpoint.")
@click.option("--img-size", type=IMG_SIZE, default=None,
              help="Training and export input size (default: the starting weights', 224).")
@click.option("--crop-ratio", type=FiniteFloat(0.0, 1.0, low_open=True), default=None,
              help="Crop size / resize size of the evaluation view, stored in the input contract "
                   "(default: the starting weights', 0.875; 1.0 keeps the whole image).")
@click.option("--batch-size", type=click.IntRange(2, 4096), default=64, show_default=True, help="Images per training step (2 or more).")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd", show_default=True,
              help="SGD with momentum, or AdamW.")
@click.option("--lr", type=FiniteFloat(0.0, 100.0, low_open=True), default=None,
              help=f"Peak learning rate (default: {DEFAULT_LR['sgd']:g} for sgd, {DEFAULT_LR['adamw']:g} for adamw).")
@click.option("--weight-decay", type=FiniteFloat(0.0, 10.0), default=None,
              help=f"Weight decay of conv and linear weights (default: {DEFAULT_WEIGHT_DECAY['sgd']:g} for sgd, "
                   f"{DEFAULT_WEIGHT_DECAY['adamw']:g} for adamw).")
@click.option("--momentum", type=FiniteFloat(0.0, 0.999), default=0.9, show_default=True, help="SGD momentum.")
@click.option("--warmup-epochs", type=click.IntRange(0, 100_000), default=1, show_default=True,
              help="Epochs of linear learning-rate warm-up before the cosine decay (at most --epochs - 1).")
@click.option("--crop-scale", type=(float, float), default=(0.35, 1.0), show_default=True, metavar="MIN MAX",
              help="Area range of random training crops, as a fraction of the image; above 1 zooms out.")
@click.option("--no-flip", is_flag=True,
              help="No random horizontal flips (use for digits, text or anything whose mirror image is another class).")
@click.option("--heldout", type=click.Path(file_okay=False), default=None,
              help="Held-out images, one subfolder per class, measured after every epoch.")
@click.option("--heldout-fraction", type=FiniteFloat(0.0, 0.9, low_open=True), default=None,
              help="Instead of --heldout: hold out this seeded, stratified share of --data.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the initialisation, the sample order and the augmentation.")
@click.option("--workers", type=click.IntRange(0, 64), default=0, show_default=True,
              help="Data-loading processes (0: in the training process); results do not depend on it.")
@click.option("--threads", type=THREADS, default=None, help="PyTorch CPU threads (default: PyTorch's choice).")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no per-epoch lines; the summary only.")
@click.option("--json", "as_json", is_flag=True, help="Print the training record as JSON on stdout.")
def finetune_command(arch, data, epochs, out, weights, img_size, crop_ratio, batch_size, optimizer, lr, weight_decay,
                     momentum, warmup_epochs, crop_scale, no_flip, heldout, heldout_fraction, seed, workers, threads,
                     quiet, as_json) -> None:  # fmt: skip
    """Train a classifier on an image folder and write a checkpoint that 'sdeploy export' takes as it is.

    The weights written are the last epoch's; held-out images are only measured.

    Example: sdeploy finetune --arch v2_x0_5 --data flowers/train --heldout flowers/val --epochs 10 --out flowers.pt
    """
    result = finetune(
        arch, data, epochs, out, weights=weights, img_size=img_size, crop_ratio=crop_ratio, batch_size=batch_size,
        optimizer=optimizer, lr=lr, weight_decay=weight_decay, momentum=momentum, warmup_epochs=warmup_epochs,
        crop_scale=crop_scale, flip=not no_flip, heldout=heldout, heldout_fraction=heldout_fraction, seed=seed,
        workers=workers, threads=threads, progress=not (quiet or as_json),
    )  # fmt: skip
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(_summary(result))


def _summary(result) -> str:
    contract, final = result.contract, result.final
    wrote = (
        f"wrote {result.checkpoint}: {result.arch}, {len(result.labels)} classes, "
        f"{contract.img_size}x{contract.img_size} input (resize {contract.resize_size}), "
        f"{len(result.history)} epoch{'s' if len(result.history) > 1 else ''} in {result.seconds:.0f}s"
    )
    lines = [wrote]
    if final.heldout_total:
        lines.append(f"held-out accuracy: {final.heldout_accuracy:.2%} ({final.heldout_correct}/{final.heldout_total})")
    lines.append(f"export it: sdeploy export --weights {result.checkpoint} --target all")
    return "\n".join(lines)
