"""sdeploy finetune: data reading, reproducible training, self-describing checkpoints, and the committed digits model."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, run_cli
from digits_data import DIGITS_CHECKPOINT, make_digits_module, write_digits
from PIL import Image

from shufflenet_deploy.training.datasets import (
    Augmentation,
    box_resample_weights,
    epoch_batches,
    read_image_folder,
    split_heldout,
    train_view,
)
from shufflenet_deploy.training.finetune import evaluate, finetune, lr_at, with_classifier_for
from shufflenet_deploy.manifest import read_manifest
from shufflenet_deploy.predict import predict_logits
from shufflenet_deploy.preprocess import InputContract, resample_weights
from shufflenet_deploy.verify import build_inputs, verify
from shufflenet_deploy.zoo import load_model

COLORS = {"blue": (40, 60, 200), "green": (40, 180, 60), "red": (210, 50, 40)}
#: Small and fast: 32x32 inputs, one thread, a few epochs of a few batches.
FAST = {"img_size": 32, "batch_size": 8, "lr": 0.002, "threads": 1, "progress": False}


def write_color_images(root, per_class: int, seed: int) -> None:
    """An easy dataset: noisy 40x48 images whose class is their dominant colour."""
    rng = np.random.default_rng(seed)
    for name, color in COLORS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.asarray(color) + rng.normal(0, 30, (40, 48, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / name / f"{i:02d}.png")


@pytest.fixture(scope="module")
def colors(tmp_path_factory):
    root = tmp_path_factory.mktemp("colors")
    write_color_images(root / "train", per_class=32, seed=0)
    write_color_images(root / "heldout", per_class=6, seed=1)
    return root


@pytest.fixture(scope="module")
def trained(colors, tmp_path_factory):
    """One short training run shared by the checkpoint tests (from PyTorch's init: it settles fastest)."""
    out = tmp_path_factory.mktemp("trained") / "colors.pt"
    result = finetune("v2_x0_5", colors / "train", 5, out, weights="none", heldout=colors / "heldout",
                      crop_scale=(0.5, 1.0), **FAST)  # fmt: skip
    return result


# ---------------------------------------------------------------- data


def test_image_folder_reads_sorted_classes_and_splits_stratified(colors):
    folder = read_image_folder(colors / "train")
    assert folder.classes == ["blue", "green", "red"]
    assert len(folder.samples) == 96
    assert [label for _, label in folder.samples] == [0] * 32 + [1] * 32 + [2] * 32
    training, heldout = split_heldout(folder, 0.25, seed=3)
    assert np.bincount(heldout.targets()).tolist() == [8, 8, 8]
    assert not {p for p, _ in training.samples} & {p for p, _ in heldout.samples}
    assert split_heldout(folder, 0.25, seed=3)[1].samples == heldout.samples  # seeded


def test_training_view_of_the_whole_image_uses_the_evaluation_filter():
    for in_size, out_size in [(8, 64), (64, 64), (300, 224), (100, 37)]:
        np.testing.assert_allclose(box_resample_weights(in_size, out_size, 0, in_size),
                                   resample_weights(in_size, out_size), atol=1e-12)  # fmt: skip


def test_flip_is_an_option():
    image = np.zeros((48, 48, 3), np.uint8)
    image[:, :24] = 255  # bright left half
    contract = InputContract(img_size=32, resize_size=32)

    def bright_on_the_left(flip: bool) -> list[bool]:
        # The whole image with a random aspect: the view's left half is always the image's left half, unless flipped.
        augmentation = Augmentation(min_scale=1.0, max_scale=1.0, flip=flip)
        views = [train_view(image, contract, augmentation, np.random.default_rng(i)) for i in range(20)]
        return [view[:, :, :16].mean() > view[:, :, 16:].mean() for view in views]

    assert all(bright_on_the_left(flip=False))
    assert 0 < sum(bright_on_the_left(flip=True)) < 20


def test_batches_are_seeded_shuffles_without_a_batch_of_one():
    batches = epoch_batches(21, 8, epoch=2, seed=5)
    assert batches == epoch_batches(21, 8, epoch=2, seed=5)
    assert batches != epoch_batches(21, 8, epoch=3, seed=5)
    indices = [index for batch in batches for _, index in batch]
    assert [len(b) for b in batches] == [8, 8] and len(set(indices)) == 16  # the short last batch is dropped
    assert len(epoch_batches(5, 8, epoch=0, seed=0)[0]) == 5  # fewer images than a batch: one batch


def test_learning_rate_warms_up_then_decays_to_zero():
    assert lr_at(0, 100, 10, 0.1) == pytest.approx(0.01)
    assert lr_at(9, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(55, 100, 10, 0.1) == pytest.approx(0.05)
    assert lr_at(100, 100, 10, 0.1) == pytest.approx(0.0)
    assert lr_at(0, 100, 0, 0.1) == pytest.approx(0.1)


# ---------------------------------------------------------------- training


def test_training_learns_an_easy_dataset(trained):
    losses = [epoch.train_loss for epoch in trained.history]
    assert len(losses) == 5 and losses[-1] < losses[0] / 2, losses
    assert trained.final.heldout_total == 18
    assert trained.final.heldout_accuracy >= 0.9  # chance is 1/3


def test_same_seed_gives_identical_weights_whatever_the_loader_workers(colors, tmp_path):
    runs = []
    for name, seed, workers in [("a", 7, 0), ("b", 7, 2), ("c", 8, 0)]:
        finetune("v2_x0_5", colors / "train", 1, tmp_path / f"{name}.pt", weights="none", heldout_fraction=0.25,
                 seed=seed, workers=workers, **FAST)  # fmt: skip
        runs.append(load_model(None, tmp_path / f"{name}.pt").model.state_dict())
    a, b, c = runs
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not all(torch.equal(a[key], c[key]) for key in a)


def test_checkpoint_carries_arch_labels_contract_and_its_training_record(trained, colors):
    loaded = load_model(None, trained.checkpoint)
    assert loaded.arch.name == "v2_x0_5"
    assert loaded.weights.labels == ["blue", "green", "red"]
    assert loaded.weights.num_classes == 3
    assert (loaded.weights.contract.img_size, loaded.weights.contract.resize_size) == (32, 37)  # crop ratio 0.875 kept
    training = loaded.weights.extra["training"]
    assert training["kept"] == "last epoch" and len(training["history"]) == 5
    assert training["heldout"]["correct"] == trained.final.heldout_correct
    assert training["command"].startswith("sdeploy finetune --arch v2_x0_5 ")
    assert "--weights none" in training["command"] and "--crop-scale 0.5 1.0" in training["command"]
    # Re-measured from the file alone, the held-out accuracy is the recorded one.
    heldout = read_image_folder(colors / "heldout", classes=loaded.weights.labels)
    assert evaluate(loaded.model, heldout, loaded.weights.contract, 8) == (training["heldout"]["correct"], 18)


def test_export_needs_only_the_checkpoint(trained, colors, tmp_path):
    result = run_cli("export", "--weights", trained.checkpoint, "--target", "onnx", "--out", tmp_path / "export", "-q")
    assert result.exit_code == 0, result.stderr
    manifest = read_manifest(tmp_path / "export")
    assert manifest["arch"] == "v2_x0_5" and manifest["num_classes"] == 3
    assert manifest["input"] == trained.contract.to_dict()
    assert (tmp_path / "export" / "labels.txt").read_text().split() == ["blue", "green", "red"]
    report = verify(tmp_path / "export", images=colors / "heldout", samples=0, progress=False)
    assert report.passed, [(r.runtime, r.status, r.error, r.reason) for r in report.runtimes]
    assert report.reference["accuracy"] == trained.final.heldout_accuracy
    assert report.runtimes[0].accuracy == trained.final.heldout_accuracy


def test_finetune_from_a_checkpoint_replaces_only_the_classifier(tmp_path):
    start = load_model("v2_x0_5", "random", seed=3)  # 1000 classes
    torch.manual_seed(0)
    model = with_classifier_for(start, ["cat", "dog"])
    assert model.fc.weight.shape == (2, 1024)
    before, after = start.model.state_dict(), model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in after if not key.startswith("fc."))


def test_cli_trains_and_reports_json(colors, tmp_path):
    result = run_cli(
        "finetune", "--arch", "v2_x0_5", "--data", colors / "train", "--heldout-fraction", "0.25", "--epochs", "1",
        "--out", tmp_path / "m.pt", "--weights", "none", "--img-size", "32", "--crop-ratio", "1.0", "--batch-size", "8",
        "--optimizer", "adamw", "--crop-scale", "0.6", "1.2", "--no-flip", "--threads", "1", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["labels"] == ["blue", "green", "red"]
    assert record["input_contract"]["img_size"] == record["input_contract"]["resize_size"] == 32
    assert record["recipe"]["flip"] is False and record["recipe"]["weight_decay"] == 0.05  # adamw's default
    assert record["heldout_total"] == 24 and record["train_images"] == 72
    assert "--heldout-fraction 0.25" in record["command"] and "--no-flip" in record["command"]
    assert (tmp_path / "m.pt").is_file()


def test_every_cli_option_has_help():
    from shufflenet_deploy.cli import main

    command = main.commands["finetune"]
    assert all(option.help for option in command.params), [o.name for o in command.params if not o.help]
    assert "--no-flip" in run_cli("finetune", "--help").stdout


def test_cli_prints_epochs_on_stderr_and_a_summary_on_stdout(colors, tmp_path):
    result = run_cli(
        "finetune", "--arch", "v2_x0_5", "--data", colors / "train", "--heldout", colors / "heldout", "--epochs", "1",
        "--out", tmp_path / "m.pt", "--weights", "none", "--img-size", "32", "--batch-size", "8", "--threads", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "epoch 1/1: lr " in result.stderr and "held-out accuracy" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"wrote {tmp_path / 'm.pt'}: v2_x0_5, 3 classes, 32x32 input (resize 37), 1 epoch in ")
    assert lines[1].startswith("held-out accuracy: ") and lines[1].endswith("/18)")
    assert lines[2] == f"export it: sdeploy export --weights {tmp_path / 'm.pt'} --target all"


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    write_color_images(root / "one_class", per_class=2, seed=0)
    for name in ("blue", "green"):
        (root / "one_class" / name).rename(root / f"{name}_elsewhere")
    (root / "empty_class" / "a").mkdir(parents=True)
    (root / "empty_class" / "b").mkdir()
    Image.new("RGB", (8, 8)).save(root / "empty_class" / "a" / "x.png")
    (root / "no_classes").mkdir()
    (root / "odd_heldout" / "purple").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "odd_heldout" / "purple" / "x.png")
    (root / "dir.pt").mkdir()
    return root


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--data", "{bad}/missing"], ["--data folder not found"]),
        (["--data", "{bad}/no_classes"], ["no class subfolders"]),
        (["--data", "{bad}/one_class"], ["only one class (red)"]),
        (["--data", "{bad}/empty_class"], ["has no images"]),
        (["--heldout", "{bad}/odd_heldout"], ["class(es) the training data lacks: purple"]),
        (["--heldout", "{colors}/heldout", "--heldout-fraction", "0.2"], ["either --heldout DIR or --heldout-fraction"]),
        (["--heldout-fraction", "1.5"], ["'--heldout-fraction': 1.5 is out of range", "at most 0.9"]),
        (["--epochs", "0"], ["'--epochs': 0 is not in the range 1<=x"]),
        (["--arch", "v2_x0_6"], ["unknown architecture 'v2_x0_6'", "v2_x0_5"]),
        (["--arch", "v1_g3_x1_0", "--weights", "imagenet"], ["no downloadable pretrained weights"]),
        (["--lr", "-1"], ["'--lr': -1 is out of range", "above 0.0"]),
        (["--batch-size", "1"], ["'--batch-size': 1 is not in the range 2<=x"]),
        (["--crop-scale", "0.9", "0.5"], ["--crop-scale must be two numbers"]),
        (["--crop-ratio", "1.5"], ["'--crop-ratio': 1.5 is out of range", "at most 1.0"]),
        (["--img-size", "16"], ["16"]),
        (["--out", "{bad}/dir.pt"], ["is a directory"]),
        (["--weights", "{bad}/missing.pt"], ["weights file not found"]),
    ],
)
def test_usage_errors_are_one_line(args, fragments, colors, bad_data, tmp_path):
    options = {"--arch": "v2_x0_5", "--data": str(colors / "train"), "--epochs": "1", "--out": str(tmp_path / "m.pt"),
               "--weights": "random"}  # fmt: skip
    given = [a.format(bad=bad_data, colors=colors) for a in args]
    for flag, value in options.items():
        if flag not in given:
            given += [flag, value]
    result = run_cli("finetune", *given)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "m.pt").exists()


def test_scratch_weights_need_an_arch(colors, tmp_path):
    result = run_cli("finetune", "--data", colors / "train", "--epochs", "1", "--out", tmp_path / "m.pt", "--weights", "random")
    assert_one_line_error(result, "no architecture given")


# ---------------------------------------------------------------- the committed digits model


def test_digits_writer_is_deterministic_and_stratified(tmp_path):
    first = write_digits(tmp_path / "a", size=16)
    second = write_digits(tmp_path / "b", size=16)

    def digest(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.png")}

    assert digest(first) == digest(second) and len(digest(first)) == 1797
    heldout = read_image_folder(first / "heldout")
    per_class = np.bincount(read_image_folder(first / "train").targets()) + np.bincount(heldout.targets())
    assert heldout.classes == [str(d) for d in range(10)]
    assert np.bincount(heldout.targets()).tolist() == [round(0.2 * n) for n in per_class]
    pixels = np.asarray(Image.open(heldout.samples[0][0]))
    assert pixels.shape == (16, 16, 3) and (pixels[..., 0] == pixels[..., 2]).all() and pixels.max() > 200


def test_digits_writer_without_scikit_learn_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    module = make_digits_module()
    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(SystemExit) as exit_info:
        module.load_sklearn_digits()
    assert "pip install scikit-learn" in str(exit_info.value)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digits(tmp_path_factory.mktemp("digits"))


def test_committed_digits_model_reproduces_its_recorded_heldout_accuracy(digits):
    assert DIGITS_CHECKPOINT.stat().st_size < 2 * 1024 * 1024
    loaded = load_model(None, DIGITS_CHECKPOINT)
    assert loaded.arch.name == "v2_x0_5"
    assert loaded.weights.labels == [str(d) for d in range(10)]
    contract = loaded.weights.contract
    assert (contract.img_size, contract.resize_size) == (64, 64)  # crop ratio 1: the digit is never cut
    training = loaded.weights.extra["training"]
    assert "--weights none" in training["command"] and "--no-flip" in training["command"]
    recorded = training["heldout"]
    assert recorded["accuracy"] >= 0.95
    # Through verify's own input pipeline, so this is also the reference 'sdeploy verify --images' shows.
    inputs = build_inputs(contract, loaded.weights.labels, 0, 0, digits / "heldout")
    predictions = predict_logits(loaded.model, inputs.tensors).argmax(1)
    assert len(inputs.targets) == recorded["total"]
    assert int((predictions == inputs.targets).sum()) == recorded["correct"]
