"""A battery of hostile and broken inputs across every command: one clear line, the right exit code, nothing left.

Each case runs the CLI as a user would and checks: the exit code (2 for bad
input, 1 for an operation that failed), exactly one ``Error:`` line on stderr,
no traceback, and that no file of ours was left behind (in the working
folder, the weights cache or the temporary folder).  The full-disk cases
fill a real 3 MB tmpfs, which needs root (CI runs as root); elsewhere they
are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, TEST_IMG_SIZE, FileServer, assert_one_line_error, run_cli, run_sdeploy
from PIL import Image

from shufflenet_deploy import export

DIGITS = REPO / "models" / "digits_v2_x0_5.pt"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_header(path: Path, side: int = 20000) -> Path:
    """A PNG header that claims ``side`` x ``side`` RGB pixels: a few dozen bytes."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Hostile files, made once: images, checkpoints, manifests."""
    root = tmp_path_factory.mktemp("hostile")
    made = {"bomb": bomb_header(root / "bomb.png")}
    Image.new("1", (20000, 20000)).save(root / "huge-1bit.png")  # a real image: compresses to a few kB
    made["huge"] = root / "huge-1bit.png"
    Image.fromarray(np.zeros((1, 5000, 3), np.uint8)).save(root / "strip.png")
    made["strip"] = root / "strip.png"
    good = root / "good.jpg"
    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(good)
    made["good"] = good
    made["truncated"] = root / "truncated.jpg"
    made["truncated"].write_bytes(good.read_bytes()[:200])
    made["text"] = root / "notes.jpg"
    made["text"].write_text("this is not a picture\n")
    state = torch.load(DIGITS, weights_only=True)
    nan_state = {**state, "state_dict": {k: v.clone() for k, v in state["state_dict"].items()}}
    nan_state["state_dict"]["fc.weight"][0, 0] = float("nan")
    torch.save(nan_state, root / "nan.pt")
    made["nan"] = root / "nan.pt"

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(root / "PWNED"),))

    torch.save({"state_dict": Evil()}, root / "evil.pt")
    made["evil"] = root / "evil.pt"
    made["pwned"] = root / "PWNED"
    made["labels4"] = root / "four.txt"
    made["labels4"].write_text("a\nb\nc\nd\n")
    made["binary_labels"] = root / "binary.txt"
    made["binary_labels"].write_bytes(bytes(range(256)) * 8)
    (root / "empty").mkdir()
    made["empty"] = root / "empty"
    (root / "bad-images" / "cat").mkdir(parents=True)
    (root / "bad-images" / "dog").mkdir(parents=True)
    for label in ("cat", "dog"):
        for index in range(3):
            (root / "bad-images" / label / f"{index}.png").write_bytes(b"\x89PNG broken")
    made["bad_images"] = root / "bad-images"
    return made


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "digits"
    assert export(None, "onnx", weights=DIGITS, out=out, progress=False).ok
    return out


def manifest_variant(export_dir: Path, tmp_path: Path, text: str) -> Path:
    copy = tmp_path / "copy"
    copy.mkdir()
    for item in export_dir.iterdir():
        if item.is_file() and item.name != "sdeploy.json":
            (copy / item.name).write_bytes(item.read_bytes())
    (copy / "sdeploy.json").write_text(text)
    return copy


@contextmanager
def sandbox(tmp_path: Path, monkeypatch):
    """The working folder, weights cache and temp folder of one case; yields a function listing what is in them."""
    work, cache, temp = tmp_path / "work", tmp_path / "cache", tmp_path / "temp"
    for folder in (work, cache, temp):
        folder.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TORCH_HOME", str(cache))
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr("tempfile.tempdir", str(temp))

    def leftovers() -> list[str]:
        found = [str(p.relative_to(tmp_path)) for folder in (work, temp) for p in folder.rglob("*")]
        found += [str(p.relative_to(tmp_path)) for p in cache.rglob("*") if p.name.endswith(".tmp")]
        return sorted(found)

    yield leftovers


# (name, argv, exit code, fragments of the Error line); FILE:x and EXPORT are replaced by paths.
CASES = [
    ("info: unknown arch", ["info", "v9_x1_0"], 2, ["unknown architecture 'v9_x1_0'"]),
    ("info: huge size", ["info", "v2_x0_5", "--img-size", "100000"], 2, ["--img-size", "32<=x<=2048"]),
    ("info: tiny size", ["info", "v2_x0_5", "--img-size", "16"], 2, ["--img-size"]),
    ("classify: missing image", ["classify", "nope.jpg", "--arch", "v2_x0_5"], 2, ["image not found: nope.jpg"]),
    ("classify: folder as image", ["classify", "FILE:empty", "--arch", "v2_x0_5"], 2, ["is a directory"]),
    ("classify: bomb header", ["classify", "FILE:bomb", "--arch", "v2_x0_5"], 2, ["20000x20000", "over the 120 million"]),
    ("classify: real 400 MP image", ["classify", "FILE:huge", "--arch", "v2_x0_5"], 2, ["20000x20000", "400 million"]),
    ("classify: 5000x1 strip", ["classify", "FILE:strip", "--arch", "v2_x0_5"], 2, ["5000x1", "32:1"]),
    ("classify: truncated jpeg", ["classify", "FILE:truncated", "--arch", "v2_x0_5", "--weights", "random"], 2,
     ["cannot read image", "truncated.jpg"]),
    ("classify: text named .jpg", ["classify", "FILE:text", "--arch", "v2_x0_5"], 2, ["cannot read image", "notes.jpg"]),
    ("classify: negative seed", ["classify", "FILE:good", "--seed", "-1"], 2, ["--seed", "0<=x<=4294967295"]),
    ("classify: NaN weights", ["classify", "FILE:good", "--weights", "FILE:nan"], 2, ["NaN or Inf", "fc.weight"]),
    ("classify: code-running pickle", ["classify", "FILE:good", "--weights", "FILE:evil"], 2,
     ["not weights-only", "refused", "torch.save(model.state_dict(), PATH)"]),
    ("classify: text as weights", ["classify", "FILE:good", "--weights", "FILE:labels4"], 2,
     ["not a PyTorch checkpoint"]),
    ("classify: folder as weights", ["classify", "FILE:good", "--weights", "FILE:empty"], 2, ["weights file not found"]),
    ("classify: zero classes", ["classify", "FILE:good", "--num-classes", "0"], 2, ["--num-classes"]),
    ("classify: a billion classes", ["classify", "FILE:good", "--num-classes", "1000000000"], 2, ["--num-classes"]),
    ("classify: topk 0", ["classify", "FILE:good", "--topk", "0"], 2, ["--topk"]),
    ("export: unknown target", ["export", "--arch", "v2_x0_5", "--target", "tensorrt"], 2, ["unknown target"]),
    ("export: huge size", ["export", "--arch", "v2_x0_5", "--target", "onnx", "--img-size", "100000"], 2,
     ["--img-size"]),
    ("export: batch 0", ["export", "--arch", "v2_x0_5", "--target", "onnx", "--batch", "0"], 2, ["--batch"]),
    ("export: batch 10^6", ["export", "--arch", "v2_x0_5", "--target", "onnx", "--batch", "1000000"], 2, ["--batch"]),
    ("export: out is a file", ["export", "--arch", "v2_x0_5", "--target", "onnx", "--weights", "random", "--out",
                               "FILE:good"], 2, ["is a file"]),
    ("export: labels missing", ["export", "--arch", "v2_x0_5", "--target", "onnx", "--weights", "random",
                                "--labels", "nope.txt"], 2, ["nope.txt"]),
    ("export: labels count", ["export", "--arch", "v2_x0_5", "--target", "onnx", "--weights", "random",
                              "--num-classes", "3", "--labels", "FILE:labels4"], 2, ["has 4 lines", "3 classes"]),
    ("export: binary labels", ["export", "--arch", "v2_x0_5", "--target", "onnx", "--weights", "random",
                               "--labels", "FILE:binary_labels"], 2, ["cannot read labels file"]),
    ("export: int8 without images", ["export", "--arch", "v2_x0_5", "--target", "onnx", "--quantize", "int8"], 2,
     ["needs calibration images"]),
    ("export: empty calib", ["export", "--arch", "v2_x0_5", "--target", "onnx", "--quantize", "int8", "--calib",
                             "FILE:empty"], 2, ["no images found"]),
    ("export: opset 5", ["export", "--arch", "v2_x0_5", "--target", "onnx", "--opset", "5"], 2, ["--opset 5"]),
    ("export: weights of another arch", ["export", "--arch", "v2_x1_0", "--target", "onnx", "--weights",
                                         "FILE:digits"], 2, ["trained as v2_x0_5, not v2_x1_0"]),
    ("verify: missing folder", ["verify", "nowhere"], 2, ["no sdeploy.json in nowhere"]),
    ("verify: manifest not JSON", ["verify", "MANIFEST:{not json"], 2, ["not valid JSON"]),
    ("verify: manifest a list", ["verify", "MANIFEST:[1, 2, 3]"], 2, ["the file must be a JSON object"]),
    ("verify: nested manifest", ["verify", "MANIFEST:" + "[" * 100_000 + "]" * 100_000], 2, ["not valid JSON"]),
    ("verify: negative samples", ["verify", "EXPORT", "--samples", "-1"], 2, ["--samples"]),
    ("verify: NaN atol", ["verify", "EXPORT", "--atol", "nan"], 2, ["--atol", "not a finite number"]),
    ("verify: images missing", ["verify", "EXPORT", "--images", "nope"], 2, ["image folder not found"]),
    ("verify: broken images", ["verify", "EXPORT", "--images", "FILE:bad_images"], 2, ["cannot read image"]),
    ("verify: other checkpoint", ["verify", "EXPORT", "--weights", "FILE:nan"], 2,
     ["is not the checkpoint this export was made from"]),
    ("verify: threads 10^6", ["verify", "EXPORT", "--threads", "1000000"], 2, ["--threads"]),
    ("bundle: unknown app", ["bundle", "--app", "watch", "--from", "EXPORT"], 2, ["--app"]),
    ("bundle: no coreml artifact", ["bundle", "--app", "ios", "--from", "EXPORT", "--dest", "app"], 2,
     ["no coreml artifact for the ios app"]),
    ("bundle: dest is a file", ["bundle", "--app", "web", "--from", "EXPORT", "--dest", "FILE:good"], 2,
     ["is a file"]),
    ("bench: threads 0", ["bench", "EXPORT", "--threads", "0"], 2, ["--threads"]),
    ("bench: runs 0", ["bench", "EXPORT", "--runs", "0"], 2, ["--runs"]),
    ("bench: missing folder", ["bench", "nowhere"], 2, ["does not exist"]),
    ("profile: threads 0", ["profile", "v2_x0_5", "--threads", "0"], 2, ["--threads"]),
    ("finetune: no data", ["finetune", "--arch", "v2_x0_5", "--data", "nope", "--epochs", "1", "--out", "m.pt"], 2,
     ["nope"]),
    ("finetune: zero epochs", ["finetune", "--arch", "v2_x0_5", "--data", "FILE:bad_images", "--epochs", "0", "--out",
                               "m.pt"], 2, ["--epochs"]),
    ("finetune: infinite lr", ["finetune", "--arch", "v2_x0_5", "--data", "FILE:bad_images", "--epochs", "1",
                               "--out", "m.pt", "--lr", "inf"], 2, ["--lr", "not a finite number"]),
    ("finetune: out is a folder", ["finetune", "--arch", "v2_x0_5", "--data", "FILE:bad_images", "--epochs", "1",
                                   "--out", "FILE:empty"], 2, ["is a directory"]),
    ("demo: missing web folder", ["demo", "web", "--dir", "nope"], 2, ["nope"]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_hostile_input_gets_one_clear_line_and_leaves_nothing(case, files, export_dir, tmp_path, monkeypatch):
    name, argv, code, fragments = case
    with sandbox(tmp_path, monkeypatch) as leftovers:
        args = [_resolve(arg, files, export_dir, tmp_path) for arg in argv]
        result = run_cli(*args)
        assert_one_line_error(result, *fragments, code=code)
        assert leftovers() == [], name
    assert not files["pwned"].exists(), "the pickle ran code"


def _resolve(arg: str, files: dict, export_dir: Path, tmp_path: Path) -> str:
    if arg.startswith("FILE:"):
        key = arg[5:]
        return str(DIGITS if key == "digits" else files[key])
    if arg == "EXPORT":
        return str(export_dir)
    if arg.startswith("MANIFEST:"):
        return str(manifest_variant(export_dir, tmp_path, arg[9:]))
    return arg


def test_sixteen_bit_and_float_images_are_scaled_not_clipped(tmp_path):
    from shufflenet_deploy.preprocess import load_image

    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    decoded = load_image(tmp_path / "grey16.png")
    np.testing.assert_array_equal(decoded[..., 0], (ramp >> 8).astype(np.uint8))
    assert (decoded == 255).mean() < 0.01  # the old path clipped 99.6% of such pixels to 255
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "half.tif")
    assert (load_image(tmp_path / "half.tif") == 128).all()


def test_a_thin_huge_image_resizes_in_bounded_memory(tmp_path):
    """Resizing costs the crop, not the product of the resized sides (a 5000x1 strip once asked for 47.7 GiB)."""
    import tracemalloc

    from shufflenet_deploy.preprocess import InputContract, resize_and_crop

    image = np.random.default_rng(0).integers(0, 256, (160, 5000, 3), dtype=np.uint8)  # 31:1, just allowed
    tracemalloc.start()
    pixels = resize_and_crop(image, InputContract())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert pixels.shape == (224, 224, 3)
    assert peak < 64 << 20, peak


def test_a_worker_error_in_finetune_is_one_line_without_its_traceback(files, tmp_path):
    result = run_cli("finetune", "--arch", "v2_x0_5", "--weights", "random", "--data", files["bad_images"],
                     "--epochs", "1", "--out", tmp_path / "m.pt", "--img-size", "32", "--workers", "2", "-q")  # fmt: skip
    assert_one_line_error(result, "cannot read image")
    assert "Original Traceback" not in result.stderr and "File \"" not in result.stderr
    assert not (tmp_path / "m.pt").exists()


def test_a_diverging_finetune_stops_and_keeps_the_last_good_epoch(tmp_path):
    from digits_data import write_digits

    data = write_digits(tmp_path / "digits")
    out = tmp_path / "m.pt"
    result = run_cli("finetune", "--arch", "v2_x0_5", "--weights", "random", "--data", data / "train", "--epochs", "3",
                     "--out", out, "--img-size", "32", "--lr", "50", "--warmup-epochs", "0", "--threads", "1", "-q")  # fmt: skip
    assert_one_line_error(result, "training diverged in epoch", "lower --lr", code=1)
    if "kept epoch" in result.stderr:
        record = torch.load(out, weights_only=True)["training"]
        assert "the last before training diverged" in record["kept"]
        assert all(torch.isfinite(v).all() for v in torch.load(out, weights_only=True)["state_dict"].values())
    else:
        assert not out.exists()


# ---------------------------------------------------------------- downloads


class EndlessServer(FileServer):
    """Serves every file name as an endless stream of zeros, without a length."""

    def __init__(self):
        super().__init__()
        import http.server

        class Endless(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                self.send_response(200)
                self.end_headers()
                try:
                    while True:
                        self.wfile.write(b"\0" * 65536)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd.RequestHandlerClass = Endless


def test_an_endless_download_stops_at_the_published_size(tmp_path, monkeypatch):
    server = EndlessServer()
    try:
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "cache"))
        monkeypatch.setenv("SDEPLOY_WEIGHTS_MIRROR", server.url)
        result = run_cli("classify", REPO / "shufflenet_deploy" / "data" / "flower.jpg", "--arch", "v2_x0_5")
        assert_one_line_error(result, "sends more than the 5539103 bytes the published file has", code=1)
        assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    finally:
        server.close()


def test_a_killed_download_leaves_a_temporary_file_the_next_attempt_removes(tmp_path, monkeypatch):
    from shufflenet_deploy.weights import remove_stale_temporaries

    cache = tmp_path / "cache"
    cache.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = cache / f".shufflenetv2_x0.5-f707e7126e.pth.{int(dead.stdout)}.tmp"
    stale.write_bytes(b"\0" * 1000)
    ours = cache / f".other.pth.{os.getpid()}.tmp"
    ours.write_bytes(b"in progress")
    remove_stale_temporaries(cache)
    assert not stale.exists() and ours.exists()


@pytest.mark.parametrize("mirror", ["ftp//nowhere", "not a url", "javascript:alert(1)"])
def test_a_malformed_mirror_is_one_clear_line(mirror, monkeypatch, files):
    monkeypatch.setenv("SDEPLOY_WEIGHTS_MIRROR", mirror)
    assert_one_line_error(run_cli("classify", files["good"], "--arch", "v2_x0_5"), "SDEPLOY_WEIGHTS_MIRROR", "is not")


def test_an_unwritable_weights_cache_is_one_clear_line(files, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("TORCH_HOME", str(blocker / "torch"))  # a folder cannot be made under a file, even by root
    result = run_cli("classify", files["good"], "--arch", "v2_x0_5")
    assert_one_line_error(result, "cannot write the weights cache", "TORCH_HOME", code=1)


# ---------------------------------------------------------------- full disks


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 3 MB filesystem (tmpfs): writes fail with ENOSPC exactly as on a full disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root; the macOS job does not, so it skips these)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _ours(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*"))


def fill(disk: Path) -> None:
    """Write until the filesystem has no room left."""
    with open(disk / "filler", "wb", buffering=0) as handle:
        for size in (1 << 16, 1 << 12, 1):  # big writes, then smaller ones into the last partial block
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError:
                pass


def test_export_onto_a_full_disk_fails_cleanly(tiny_disk, tmp_path):
    out = tiny_disk / "export"
    env = {**os.environ, "TMPDIR": str(tiny_disk)}
    result = run_sdeploy("export", "--arch", "v2_x1_0", "--target", "all", "--weights", "random", "--out", out,
                         "--img-size", TEST_IMG_SIZE, env=env)  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert_one_line_error(result, "export failed for", "no space left on the device", "MB free", code=1)
    assert _ours(tiny_disk) == []  # no staging folder, no converter temporaries, no partial files


def test_finetune_onto_a_full_disk_fails_before_training(tiny_disk, tmp_path):
    from digits_data import write_digits

    data = write_digits(tmp_path / "digits")
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * (2 << 20))
    result = run_sdeploy("finetune", "--arch", "v2_x1_0", "--weights", "random", "--data", data / "train", "--epochs",
                         "1", "--out", tiny_disk / "m.pt", "--img-size", "32")  # fmt: skip
    assert_one_line_error(result, "MB free", "the checkpoint needs about", code=1)
    assert "epoch 1/1" not in result.stderr  # it stopped before training
    assert _ours(tiny_disk) == ["filler"]


def test_verify_json_onto_a_full_disk_fails_cleanly(tiny_disk, export_dir):
    fill(tiny_disk)
    result = run_cli("verify", export_dir, "--samples", "2", "--json", tiny_disk / "report.json")
    assert_one_line_error(result, "no space left on the device", code=1)
    assert _ours(tiny_disk) == ["filler"]


def test_bundle_onto_a_full_disk_leaves_the_app_as_it_was(tiny_disk, export_dir):
    app = tiny_disk / "app"
    app.mkdir()
    (app / "model.json").write_text("{}")
    fill(tiny_disk)
    result = run_cli("bundle", "--app", "web", "--from", export_dir, "--dest", app)
    assert_one_line_error(result, "no space left on the device", code=1)
    assert _ours(tiny_disk) == ["app", "filler", "model.json"] and (app / "model.json").read_text() == "{}"


def test_a_full_weights_cache_fails_cleanly(tiny_disk, monkeypatch, files):
    server = FileServer()
    try:
        server.files["shufflenetv2_x0.5-f707e7126e.pth"] = b"\1" * (4 << 20)
        monkeypatch.setenv("TORCH_HOME", str(tiny_disk))
        monkeypatch.setenv("SDEPLOY_WEIGHTS_MIRROR", server.url)
        result = run_cli("classify", files["good"], "--arch", "v2_x0_5")
        assert_one_line_error(result, "cannot write the weights cache", "No space left", code=1)
        assert [p for p in tiny_disk.rglob("*") if p.is_file()] == []
    finally:
        server.close()


def test_no_command_leaves_a_thread_running(files):
    before = threading.active_count()
    run_cli("classify", files["bomb"], "--arch", "v2_x0_5")
    assert threading.active_count() == before


@pytest.mark.parametrize("mode", [[], ["-q"], ["--json"]])
def test_a_failed_export_or_verify_says_so_in_one_line_in_every_mode(mode, export_dir, tmp_path, monkeypatch):
    def broken(self, ctx):
        raise RuntimeError("converter exploded")

    from shufflenet_deploy.backends import get_backend

    monkeypatch.setattr(type(get_backend("onnx").target), "export", broken)
    result = run_cli("export", "--arch", "v2_x0_5", "--target", "onnx", "--weights", "random", "--img-size",
                     TEST_IMG_SIZE, "--out", tmp_path / "o", *mode)  # fmt: skip
    assert_one_line_error(result, "export failed for onnx (RuntimeError: converter exploded)", code=1)
    if mode == ["--json"]:
        assert json.loads(result.stdout)["ok"] is False

    verify_mode = {"--json": ["--json", "-"]}.get(mode[0], mode) if mode else []
    result = run_cli("verify", export_dir, "--samples", "2", "--atol", "0", "--no-locate", *verify_mode)
    assert_one_line_error(result, "verification failed", "onnx in onnxruntime (fail)", code=1)
