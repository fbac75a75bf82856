"""``finetune()``: train a ShuffleNet on an image folder and write a checkpoint that exports on its own.

The checkpoint (``weights.save_checkpoint``) carries the arch, the class
labels (the data's subfolder names), the input contract training used and a
``training`` record (recipe, equivalent command, per-epoch history, held-out
accuracy), so ``sdeploy export --weights CKPT`` needs no other option.

Training: SGD with momentum or AdamW; weight decay on conv and linear
weights only (decaying BatchNorm scales and biases only hurts); a linear
warm-up then a cosine decay to zero, stepped every batch; cross-entropy.
The weights written are the **last** epoch's: the held-out set is only ever
measured, never used to pick an epoch, so its accuracy is an honest estimate.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from .datasets import Augmentation, EvalSet, ImageFolder, TrainingSet, epoch_batches, read_image_folder, split_heldout
from ..errors import FAILURE_EXIT_CODE, SdeployError, os_error
from ..fsutil import check_writable as check_folder_writable
from ..fsutil import free_bytes
from ..nets import get_arch
from ..preprocess import InputContract, check_img_size
from ..progress import progress_bar, status
from ..sysutil import torch_threads
from ..weights import save_checkpoint
from ..zoo import LoadedModel, load_model

OPTIMIZERS = ("sgd", "adamw")
DEFAULT_LR = {"sgd": 0.05, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 0.05}
#: Weight choices that train from scratch: the network is built for the data's classes directly.
SCRATCH_WEIGHTS = ("random", "none")


@dataclass(frozen=True)
class Recipe:
    """Every choice that shapes the trained weights, defaults resolved; stored in the checkpoint."""

    arch: str
    data: str
    epochs: int
    weights: str
    img_size: int
    crop_ratio: float
    batch_size: int
    optimizer: str
    lr: float
    weight_decay: float
    momentum: float
    warmup_epochs: int
    min_crop_scale: float
    max_crop_scale: float
    flip: bool
    heldout: str | None
    heldout_fraction: float | None
    seed: int
    threads: int | None

    def command(self, out: str | Path) -> str:
        """The ``sdeploy finetune`` command line that repeats this run."""
        args = [
            "sdeploy", "finetune", "--arch", self.arch, "--data", self.data, "--epochs", self.epochs, "--out", out,
            "--weights", self.weights, "--img-size", self.img_size, "--crop-ratio", self.crop_ratio,
            "--batch-size", self.batch_size, "--optimizer", self.optimizer, "--lr", self.lr,
            "--weight-decay", self.weight_decay, "--momentum", self.momentum, "--warmup-epochs", self.warmup_epochs,
            "--crop-scale", self.min_crop_scale, self.max_crop_scale, "--seed", self.seed,
        ]  # fmt: skip
        if not self.flip:
            args.append("--no-flip")
        if self.heldout is not None:
            args += ["--heldout", self.heldout]
        if self.heldout_fraction is not None:
            args += ["--heldout-fraction", self.heldout_fraction]
        if self.threads is not None:
            args += ["--threads", self.threads]
        return shlex.join(map(str, args))


@dataclass
class EpochStats:
    epoch: int
    lr: float  # at the epoch's last step
    train_loss: float
    train_accuracy: float  # on augmented views, in training mode
    heldout_correct: int | None
    heldout_total: int | None
    seconds: float

    @property
    def heldout_accuracy(self) -> float | None:
        return None if not self.heldout_total else self.heldout_correct / self.heldout_total


@dataclass
class FinetuneResult:
    checkpoint: Path
    arch: str
    labels: list[str]
    contract: InputContract
    recipe: Recipe
    train_images: int
    history: list[EpochStats] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final(self) -> EpochStats:
        return self.history[-1]

    def to_dict(self) -> dict:
        return {
            "checkpoint": str(self.checkpoint),
            "arch": self.arch,
            "labels": self.labels,
            "input_contract": self.contract.to_dict(),
            "recipe": asdict(self.recipe),
            "command": self.recipe.command(self.checkpoint),
            "train_images": self.train_images,
            "heldout_accuracy": self.final.heldout_accuracy,
            "heldout_correct": self.final.heldout_correct,
            "heldout_total": self.final.heldout_total,
            "history": [{**asdict(e), "heldout_accuracy": e.heldout_accuracy} for e in self.history],
            "seconds": self.seconds,
        }


def finetune(
    arch: str | None,
    data: str | Path,
    epochs: int,
    out: str | Path,
    *,
    weights: str | Path = "imagenet",
    img_size: int | None = None,
    crop_ratio: float | None = None,
    batch_size: int = 64,
    optimizer: str = "sgd",
    lr: float | None = None,
    weight_decay: float | None = None,
    momentum: float = 0.9,
    warmup_epochs: int = 1,
    crop_scale: tuple[float, float] = (0.35, 1.0),
    flip: bool = True,
    heldout: str | Path | None = None,
    heldout_fraction: float | None = None,
    seed: int = 0,
    workers: int = 0,
    threads: int | None = None,
    progress: bool = True,
) -> FinetuneResult:
    """Train ``arch`` on the class-per-folder images in ``data`` and write the checkpoint ``out``.

    ``weights``: ``imagenet`` fine-tunes the published weights (the classifier
    is replaced for the data's classes), ``random``/``none`` train from scratch
    from sdeploy's seeded init or PyTorch's default init, a PATH continues from
    a checkpoint.  ``img_size`` and ``crop_ratio`` (crop / resize size) default
    to the starting weights' contract.  Held-out accuracy is measured on
    ``heldout`` (a class-per-folder tree) or on a seeded stratified
    ``heldout_fraction`` of ``data``; with neither, nothing is held out.
    ``lr`` and ``weight_decay`` default per optimizer (DEFAULT_LR, DEFAULT_WEIGHT_DECAY).
    """
    started = time.perf_counter()
    out = Path(out)
    _check_arguments(epochs, batch_size, optimizer, lr, weight_decay, momentum, warmup_epochs, seed, workers, threads, crop_ratio)
    augmentation = Augmentation(min_scale=crop_scale[0], max_scale=crop_scale[1], flip=flip)
    augmentation.validate()
    if arch is not None:
        get_arch(arch)  # an unknown name fails before any data is read
    check_writable(out)
    training_set, heldout_set = load_splits(data, heldout, heldout_fraction, seed)

    # fork_rng: seeding for reproducibility must not reset the caller's random stream.
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        loaded, model = starting_model(arch, weights, training_set.classes, seed, progress)
        contract = training_contract(loaded.weights.contract, img_size, crop_ratio)
        recipe = Recipe(
            arch=loaded.arch.name, data=str(data), epochs=epochs, weights=str(weights), img_size=contract.img_size,
            crop_ratio=contract.crop_ratio, batch_size=batch_size, optimizer=optimizer,
            lr=lr if lr is not None else DEFAULT_LR[optimizer],
            weight_decay=weight_decay if weight_decay is not None else DEFAULT_WEIGHT_DECAY[optimizer],
            momentum=momentum, warmup_epochs=min(warmup_epochs, epochs - 1),
            min_crop_scale=augmentation.min_scale, max_crop_scale=augmentation.max_scale, flip=flip,
            heldout=str(heldout) if heldout is not None else None, heldout_fraction=heldout_fraction,
            seed=seed, threads=threads,
        )  # fmt: skip
        result = FinetuneResult(out, recipe.arch, training_set.classes, contract, recipe, len(training_set.samples))
        _describe_run(result, loaded, heldout_set, progress)
        check_space(out, model)
        try:
            result.history = train(model, training_set, heldout_set, contract, augmentation, recipe, workers, progress)
        except Diverged as diverged:
            result.history = diverged.history
            result.seconds = time.perf_counter() - started
            _keep_last_good(out, model, result, loaded, diverged)
            raise SdeployError(str(diverged), exit_code=FAILURE_EXIT_CODE) from None
        except SdeployError as exc:
            raise _without_worker_traceback(exc) from None
    result.seconds = time.perf_counter() - started
    write_checkpoint(out, model, result, loaded)
    return result


class Diverged(Exception):
    """Training blew up; carries the epochs that were still good and the weights after the last of them."""

    def __init__(self, message: str, history: list, good_state: dict | None):
        super().__init__(message)
        self.history = history
        self.good_state = good_state


#: An epoch whose mean loss is this many times chance level (ln classes) has diverged, not just learnt slowly.
DIVERGED_LOSS_FACTOR = 5.0


def _keep_last_good(out: Path, model: nn.Module, result: FinetuneResult, loaded: LoadedModel, diverged: Diverged) -> None:
    if diverged.good_state is None:
        return  # not one good epoch: nothing worth keeping, and an existing --out stays as it was
    model.load_state_dict(diverged.good_state)
    write_checkpoint(out, model, result, loaded, kept=f"epoch {len(result.history)}, the last before training diverged")


def _without_worker_traceback(exc: SdeployError) -> SdeployError:
    """An error raised in a data-loading worker arrives with the worker's traceback folded into its text."""
    text = str(exc)
    if "Original Traceback" in text:
        text = text.rsplit("SdeployError: ", 1)[-1].strip()
    return SdeployError(text, exc.exit_code)


def check_space(out: Path, model: nn.Module) -> None:
    """Fail before training, not after it, when the checkpoint cannot fit on the disk."""
    needed = sum(t.numel() * t.element_size() for t in model.state_dict().values()) + (1 << 20)
    free = free_bytes(out.parent)
    if free is not None and free < needed:
        raise SdeployError(f"{out.parent} has {free / 1e6:.1f} MB free, the checkpoint needs about {needed / 1e6:.1f} MB; "
                           "free some space or choose another --out", exit_code=FAILURE_EXIT_CODE)  # fmt: skip


# ---------------------------------------------------------------- setup


def _check_arguments(epochs, batch_size, optimizer, lr, weight_decay, momentum, warmup_epochs, seed, workers, threads,
                     crop_ratio) -> None:  # fmt: skip
    checks = [
        (epochs >= 1, f"--epochs must be at least 1, got {epochs}"),
        (batch_size >= 2, f"--batch-size must be at least 2 (BatchNorm needs two images), got {batch_size}"),
        (optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer}"),
        (lr is None or lr > 0, f"--lr must be positive, got {lr}"),
        (weight_decay is None or weight_decay >= 0, f"--weight-decay must be 0 or more, got {weight_decay}"),
        (0 <= momentum < 1, f"--momentum must be in [0, 1), got {momentum}"),
        (warmup_epochs >= 0, f"--warmup-epochs must be 0 or more, got {warmup_epochs}"),
        (seed >= 0, f"--seed must be 0 or more, got {seed}"),
        (workers >= 0, f"--workers must be 0 or more, got {workers}"),
        (threads is None or threads >= 1, f"--threads must be at least 1, got {threads}"),
        (crop_ratio is None or 0 < crop_ratio <= 1, f"--crop-ratio must be in (0, 1] (crop / resize size), got {crop_ratio}"),
    ]
    for ok, message in checks:
        if not ok:
            raise SdeployError(message)


def check_writable(out: Path) -> None:
    """Fail before training, not after it, when the checkpoint cannot be written."""
    if out.is_dir():
        raise SdeployError(f"--out {out} is a directory; give a file name such as {out / 'model.pt'}")
    check_folder_writable(out.parent, "--out")


def load_splits(data, heldout, heldout_fraction, seed) -> tuple[ImageFolder, ImageFolder | None]:
    if heldout is not None and heldout_fraction is not None:
        raise SdeployError("pass either --heldout DIR or --heldout-fraction F, not both")
    training = read_image_folder(data, what="--data")
    if heldout is not None:
        return training, read_image_folder(heldout, classes=training.classes, what="--heldout")
    if heldout_fraction is not None:
        return split_heldout(training, heldout_fraction, seed)
    return training, None


def starting_model(arch: str | None, weights: str | Path, classes: list[str], seed: int,
                   progress: bool) -> tuple[LoadedModel, nn.Module]:  # fmt: skip
    """The starting weights as loaded, and the model to train: those weights with a classifier for ``classes``."""
    # PyTorch's default init (weights 'none') and new classifiers draw from torch's global generator.
    torch.manual_seed(seed)
    if str(weights) in SCRATCH_WEIGHTS:
        loaded = load_model(arch, weights, num_classes=len(classes), seed=seed, progress=progress)
        return loaded, loaded.model
    loaded = load_model(arch, weights, seed=seed, progress=progress)
    return loaded, with_classifier_for(loaded, classes)


def with_classifier_for(loaded: LoadedModel, classes: list[str]) -> nn.Module:
    """``loaded.model``, or a copy with a new classifier when its classes are not the data's."""
    if loaded.weights.num_classes == len(classes) and loaded.weights.labels == classes:
        return loaded.model
    model = loaded.arch.build(len(classes))
    head = model.classifier_key.rsplit(".", 1)[0] + "."
    body = {k: v for k, v in loaded.model.state_dict().items() if not k.startswith(head)}
    missing, unexpected = model.load_state_dict(body, strict=False)
    if unexpected or any(not k.startswith(head) for k in missing):
        raise SdeployError(f"the starting weights do not fit {loaded.arch.name} outside its classifier")
    return model


def training_contract(base: InputContract, img_size: int | None, crop_ratio: float | None) -> InputContract:
    """The starting weights' contract (colour order, mean, std...) at the training size and crop ratio."""
    img_size = img_size if img_size is not None else base.img_size
    check_img_size(img_size)
    ratio = crop_ratio if crop_ratio is not None else base.crop_ratio
    resize_size = max(img_size, round(img_size / ratio))
    return replace(base, img_size=img_size, resize_size=resize_size)


def _describe_run(result: FinetuneResult, loaded: LoadedModel, heldout: ImageFolder | None, enabled: bool) -> None:
    recipe, contract = result.recipe, result.contract
    held = f"{len(heldout.samples)} held-out" if heldout else "no held-out"
    status(
        f"finetune {recipe.arch} from {loaded.weights.kind} weights: {len(result.labels)} classes, "
        f"{result.train_images} training and {held} images, {contract.img_size}x{contract.img_size} input "
        f"(resize {contract.resize_size}), {recipe.epochs} epochs, {recipe.optimizer} lr {recipe.lr:g}",
        enabled,
    )


# ---------------------------------------------------------------- training


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay reaching 0 after ``total_steps``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * base_lr * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    decayed = [p for p in model.parameters() if p.ndim > 1]
    not_decayed = [p for p in model.parameters() if p.ndim <= 1]  # BatchNorm scales/shifts, biases
    groups = [{"params": decayed, "weight_decay": recipe.weight_decay}, {"params": not_decayed, "weight_decay": 0.0}]
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.lr)
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum)


def train(model, training_set, heldout_set, contract, augmentation, recipe, workers, progress) -> list[EpochStats]:
    views = TrainingSet(training_set, contract, augmentation, recipe.seed)
    steps_per_epoch = len(epoch_batches(len(views), recipe.batch_size, 0, recipe.seed))
    schedule = _schedule(recipe, steps_per_epoch)
    optimizer = make_optimizer(model, recipe)
    history, good_state = [], None
    for epoch in range(recipe.epochs):
        started = time.perf_counter()
        batches = epoch_batches(len(views), recipe.batch_size, epoch, recipe.seed)
        loader = torch.utils.data.DataLoader(views, batch_sampler=batches, num_workers=workers)
        # A live bar on a terminal only: in a log, the epoch's summary line says it all.
        bar = progress and sys.stderr.isatty()
        with progress_bar(len(batches), f"epoch {epoch + 1}/{recipe.epochs}", bar) as advance:
            loss, accuracy = train_epoch(model, loader, optimizer, schedule, epoch * steps_per_epoch, advance)
        _check_divergence(model, loss, epoch, recipe, len(training_set.classes), history, good_state)
        good_state = {key: value.detach().clone() for key, value in model.state_dict().items()}
        correct, total = evaluate(model, heldout_set, contract, recipe.batch_size, workers) if heldout_set else (None, None)
        stats = EpochStats(epoch + 1, schedule((epoch + 1) * steps_per_epoch - 1), loss, accuracy, correct, total,
                           time.perf_counter() - started)  # fmt: skip
        history.append(stats)
        status(_epoch_line(stats, recipe.epochs), progress)
    return history


def _check_divergence(model, loss: float, epoch: int, recipe: Recipe, classes: int, history: list, good_state) -> None:
    finite_weights = all(bool(torch.isfinite(p).all()) for p in model.state_dict().values() if p.is_floating_point())
    limit = DIVERGED_LOSS_FACTOR * max(math.log(classes), 1.0)
    if math.isfinite(loss) and loss <= limit and finite_weights:
        return
    kept = f"; kept epoch {epoch}'s weights" if good_state is not None else "; no checkpoint was written"
    raise Diverged(f"training diverged in epoch {epoch + 1} (mean loss {loss:.4g}, limit {limit:.3g}){kept}; lower "
                   f"--lr (was {recipe.lr:g})", history, good_state)  # fmt: skip


def _schedule(recipe: Recipe, steps_per_epoch: int) -> Callable[[int], float]:
    total, warmup = recipe.epochs * steps_per_epoch, recipe.warmup_epochs * steps_per_epoch
    return lambda step: lr_at(step, total, warmup, recipe.lr)


def train_epoch(model, loader, optimizer, schedule, first_step, advance) -> tuple[float, float]:
    """One pass over ``loader``; mean loss and accuracy over the training views."""
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for step, (inputs, targets) in enumerate(loader, start=first_step):
        for group in optimizer.param_groups:
            group["lr"] = schedule(step)
        logits = model(inputs)
        loss = nn.functional.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(targets)
        correct += int((logits.argmax(1) == targets).sum())
        seen += len(targets)
        advance(1)
    return loss_sum / seen, correct / seen


@torch.no_grad()
def evaluate(model: nn.Module, folder: ImageFolder, contract: InputContract, batch_size: int, workers: int = 0) -> tuple[int, int]:
    """(correct, total) of ``model`` in eval mode on ``folder`` under ``contract``."""
    model.eval()
    loader = torch.utils.data.DataLoader(EvalSet(folder, contract), batch_size=batch_size, num_workers=workers)
    correct = 0
    for inputs, targets in loader:
        correct += int((model(inputs).argmax(1) == targets).sum())
    return correct, len(folder.samples)


def _epoch_line(stats: EpochStats, epochs: int) -> str:
    line = (f"epoch {stats.epoch}/{epochs}: lr {stats.lr:.4g}, train loss {stats.train_loss:.4f}, "
            f"train accuracy {stats.train_accuracy:.1%}")  # fmt: skip
    if stats.heldout_total:
        line += f", held-out accuracy {stats.heldout_accuracy:.2%} ({stats.heldout_correct}/{stats.heldout_total})"
    return line + f", {stats.seconds:.1f}s"


# ---------------------------------------------------------------- output


def write_checkpoint(out: Path, model: nn.Module, result: FinetuneResult, loaded: LoadedModel,
                     kept: str = "last epoch") -> None:  # fmt: skip
    """state_dict + arch, labels, contract and the training record, written atomically."""
    final = result.final
    training = {
        "recipe": asdict(result.recipe),
        "command": result.recipe.command(out),
        "kept": kept,
        "train_images": result.train_images,
        "heldout": None if not final.heldout_total else {
            "correct": final.heldout_correct,
            "total": final.heldout_total,
            "accuracy": final.heldout_accuracy,
        },
        "history": [asdict(stats) for stats in result.history],
        "initial_weights": loaded.weights.to_dict(),
        "seconds": round(result.seconds, 1),
        "sdeploy_version": __version__,
        # torch.__version__ is a str subclass that weights-only loading refuses.
        "torch_version": str(torch.__version__),
    }  # fmt: skip
    state_dict = {key: value.detach().clone() for key, value in model.state_dict().items()}
    try:
        save_checkpoint(out, state_dict, arch=result.arch, labels=result.labels, contract=result.contract.to_dict(),
                        training=training)  # fmt: skip
    except OSError as exc:
        raise os_error(exc, out) from None
