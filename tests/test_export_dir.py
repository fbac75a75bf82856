"""The export directory as a safe, self-contained unit: hostile manifests, transactions, interruptions, weights.

Every refusal checks the exit code, the one ``Error:`` line, and that nothing was written.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, TEST_IMG_SIZE, assert_one_line_error, run_cli

from shufflenet_deploy import export
from shufflenet_deploy.apps import bundle as bundle_module
from shufflenet_deploy.backends import AppBinding, get_backend
from shufflenet_deploy.manifest import read_manifest
from shufflenet_deploy.verify import verify

DIGITS = REPO / "models" / "digits_v2_x0_5.pt"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: 'nothing changed' is an equality of snapshots."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fresh_onnx_export(export_cache, tmp_path: Path, name: str = "export") -> Path:
    return Path(shutil.copytree(export_cache("v2_x0_5", "onnx"), tmp_path / name))


def edit_manifest(export_dir: Path, change) -> None:
    path = export_dir / "sdeploy.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


# ---------------------------------------------------------------- hostile manifests

HOSTILE = {
    "labels outside": (lambda m: m["labels"].update(file="../../../../etc/passwd"), "labels.file", "plain file name"),
    "absolute artifact": (lambda m: m["artifacts"]["onnx"]["files"][0].update(path="/etc/passwd"), "plain file name",
                          None),
    "artifact is the directory": (lambda m: m["artifacts"]["onnx"].update(path=".") or
                                  m["artifacts"]["onnx"]["files"][0].update(path="."), "plain file name", None),
    "huge input size": (lambda m: m["input"].update(img_size=100000), "image size 100000 is too large", None),
    "classes not a number": (lambda m: m.update(num_classes="ten"), "num_classes must be a whole number", None),
    "no weights": (lambda m: m.pop("weights"), "weights must be a JSON object", None),
    "artifacts a list": (lambda m: m.update(artifacts=[]), "artifacts must be a JSON object", None),
    "negative seed": (lambda m: m["weights"].update(seed=-1), "weights.seed is -1", None),
    "unknown format": (lambda m: m["artifacts"]["onnx"].update(format="exe"), "no backend reads artifacts of format 'exe'",
                       None),
    "wrong suffix": (lambda m: m["artifacts"]["onnx"].update(path="labels.txt") or
                     m["artifacts"]["onnx"]["files"][0].update(path="labels.txt"), "is not a onnx file", None),
}  # fmt: skip


@pytest.mark.parametrize("case", list(HOSTILE))
@pytest.mark.parametrize("command", ["verify", "bench", "bundle"])
def test_hostile_manifests_are_refused_by_every_reader(case, command, export_cache, tmp_path):
    export_dir = fresh_onnx_export(export_cache, tmp_path)
    change, fragment, other = HOSTILE[case]
    edit_manifest(export_dir, change)
    before = snapshot(export_dir)
    args = {"verify": ["verify", export_dir], "bench": ["bench", export_dir, "--runs", "1"],
            "bundle": ["bundle", "--app", "web", "--from", export_dir, "--dest", tmp_path / "app"]}[command]  # fmt: skip
    result = run_cli(*args)
    assert_one_line_error(result, "not a valid sdeploy manifest", fragment, *([other] if other else []))
    assert snapshot(export_dir) == before
    assert not (tmp_path / "app").exists()


def test_a_symlink_that_leads_out_is_refused(export_cache, tmp_path):
    export_dir = fresh_onnx_export(export_cache, tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the app\n")
    (export_dir / "labels.txt").unlink()
    (export_dir / "labels.txt").symlink_to(secret)
    result = run_cli("bundle", "--app", "web", "--from", export_dir, "--dest", tmp_path / "app")
    assert_one_line_error(result, "labels.file 'labels.txt' leads outside the export directory")
    assert not (tmp_path / "app").exists()


def test_labels_are_checked_against_their_hash(export_cache, tmp_path):
    export_dir = fresh_onnx_export(export_cache, tmp_path)
    labels = (export_dir / "labels.txt").read_text().replace("tench", "goldfish", 1)
    (export_dir / "labels.txt").write_text(labels)
    for args in (["verify", export_dir], ["bundle", "--app", "web", "--from", export_dir, "--dest", tmp_path / "app"]):
        assert_one_line_error(run_cli(*args), "labels.txt does not match the sha256 the manifest recorded")
    assert not (tmp_path / "app").exists()


# ---------------------------------------------------------------- bundling


def test_bundle_copies_every_file_of_a_multi_file_artifact(export_cache, tmp_path, monkeypatch):
    # No demo app runs ncnn today; bind one to see a two-file artifact travel whole.
    monkeypatch.setitem(get_backend("ncnn").apps, "web", AppBinding("model.ncnn.param"))
    export_dir = export_cache("v2_x0_5", "ncnn")
    result = bundle_module.bundle("web", export_dir, tmp_path / "app", target="ncnn", selftest=False)
    assert sorted(result.files) == ["labels.txt", "model.json", "model.ncnn.bin", "model.ncnn.param"]
    record = read_manifest(export_dir)["artifacts"]["ncnn"]
    for entry, name in zip(record["files"], ["model.ncnn.param", "model.ncnn.bin"], strict=True):
        assert (tmp_path / "app" / name).read_bytes() == (export_dir / entry["path"]).read_bytes()


def test_a_failed_bundle_leaves_the_app_as_it_was(export_cache, tmp_path, monkeypatch):
    export_dir = export_cache("v2_x0_5", "onnx")
    app = tmp_path / "app"
    app.mkdir()
    (app / "model.onnx").write_bytes(b"the previous model")
    (app / "model.json").write_text("{}")
    (app / "sample.png").write_bytes(b"app asset")
    before = snapshot(app)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(app / "selftest.json"))

    monkeypatch.setattr("shufflenet_deploy.apps.selftest.write_selftest", full_disk)
    result = run_cli("bundle", "--app", "web", "--from", export_dir, "--dest", app)
    assert_one_line_error(result, "no space left on the device", "selftest.json", code=1)
    assert snapshot(app) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app"]  # no staging folder left beside it


# ---------------------------------------------------------------- re-exporting


def test_another_model_is_refused_and_force_replaces_it(tmp_path):
    out = tmp_path / "out"
    common = ["--arch", "v2_x0_5", "--weights", "random", "--img-size", TEST_IMG_SIZE, "--out", out, "-q"]
    assert run_cli("export", "--target", "onnx,torchscript", *common).exit_code == 0
    before = snapshot(out)
    refused = run_cli("export", "--target", "onnx", "--seed", "1", *common)
    assert_one_line_error(refused, "holds an export of another model", "other weights", "--force")
    assert snapshot(out) == before

    replaced = run_cli("export", "--target", "onnx", "--seed", "1", "--force", *common)
    assert replaced.exit_code == 0, replaced.stderr
    manifest = read_manifest(out)
    assert set(manifest["artifacts"]) == {"onnx"} and manifest["weights"]["seed"] == 1
    assert not (out / "v2_x0_5.ptl").exists()  # the old model's artifacts went with it
    assert verify(out, samples=2, progress=False).passed


def test_an_interrupted_re_export_leaves_the_previous_export_intact(export_cache, tmp_path, monkeypatch):
    export_dir = fresh_onnx_export(export_cache, tmp_path)
    before = snapshot(export_dir)
    target = get_backend("onnx").target
    original = type(target).export

    def interrupted(self, ctx):
        original(self, ctx)  # the new file is complete in staging...
        raise KeyboardInterrupt  # ...when Ctrl-C arrives

    monkeypatch.setattr(type(target), "export", interrupted)
    result = run_cli("export", "--arch", "v2_x0_5", "--weights", "random", "--img-size", TEST_IMG_SIZE, "--target",
                     "onnx", "--opset", "17", "--out", export_dir)  # fmt: skip
    assert_one_line_error(result, "interrupted", code=1)
    assert snapshot(export_dir) == before
    assert verify(export_dir, samples=2, progress=False).passed


def test_a_commit_that_fails_half_way_rolls_back(export_cache, tmp_path, monkeypatch):
    from shufflenet_deploy import exportdir

    export_dir = fresh_onnx_export(export_cache, tmp_path)
    before = snapshot(export_dir)
    write = exportdir.write_text_atomic

    def manifest_write_fails(path, text):
        if path.name == "sdeploy.json":
            raise OSError(28, "No space left on device", str(path))
        write(path, text)

    monkeypatch.setattr(exportdir, "write_text_atomic", manifest_write_fails)
    result = run_cli("export", "--arch", "v2_x0_5", "--weights", "random", "--img-size", TEST_IMG_SIZE, "--target",
                     "onnx,torchscript", "--opset", "17", "--out", export_dir)  # fmt: skip
    assert_one_line_error(result, "no space left on the device", "sdeploy.json", code=1)
    assert snapshot(export_dir) == before  # the old .onnx is back, the new .ptl gone
    assert verify(export_dir, samples=2, progress=False).passed


def test_concurrent_exports_into_one_directory_keep_every_entry(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "shufflenet_deploy", "export", "--arch", "v2_x0_5", "--weights", "random",
               "--img-size", str(TEST_IMG_SIZE), "--out", str(out), "-q", "--target"]  # fmt: skip
    procs = [subprocess.Popen([*command, target], stderr=subprocess.PIPE, text=True) for target in ("onnx", "ncnn")]
    for proc in procs:
        assert proc.wait(timeout=900) == 0, proc.stderr.read()
    assert set(read_manifest(out)["artifacts"]) == {"onnx", "ncnn"}
    assert verify(out, samples=2, progress=False).passed


def _wait_for(predicate, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _staging(out: Path) -> list[Path]:
    return [p for p in out.glob(".sdeploy-staging-*")] if out.exists() else []


def _default_signals() -> None:
    """A terminal's Ctrl-C: test workers may run with SIGINT ignored, which a child inherits (and sdeploy honours)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_clean_up_and_say_so(sig, export_cache, tmp_path):
    export_dir = fresh_onnx_export(export_cache, tmp_path)
    before = snapshot(export_dir)
    proc = subprocess.Popen([sys.executable, "-m", "shufflenet_deploy", "export", "--arch", "v2_x0_5", "--weights",
                             "random", "--img-size", str(TEST_IMG_SIZE), "--target", "coreml", "--out",
                             str(export_dir), "-q"], stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_signals)  # fmt: skip
    # Inside the converter: the target's own staging folder exists.
    _wait_for(lambda: any((p / "coreml").exists() for p in _staging(export_dir)) or proc.poll() is not None)
    assert proc.poll() is None, "the export ended before it could be interrupted"
    proc.send_signal(sig)
    stderr = proc.communicate(timeout=300)[1]
    assert proc.returncode == 1, stderr
    assert [line for line in stderr.splitlines() if line.startswith("Error:")] == [
        "Error: interrupted; work in progress was removed, nothing is half-written"
    ] and "Traceback" not in stderr
    assert snapshot(export_dir) == before and not _staging(export_dir)


def test_a_killed_export_leaves_staging_that_the_next_export_removes(export_cache, tmp_path):
    export_dir = fresh_onnx_export(export_cache, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "shufflenet_deploy", "export", "--arch", "v2_x0_5", "--weights",
                             "random", "--img-size", str(TEST_IMG_SIZE), "--target", "coreml", "--out",
                             str(export_dir), "-q"])  # fmt: skip
    _wait_for(lambda: bool(_staging(export_dir)) or proc.poll() is not None)
    proc.kill()
    proc.wait()
    assert _staging(export_dir), "SIGKILL leaves the staging folder (nothing can run on SIGKILL)"
    assert verify(export_dir, samples=2, progress=False).passed  # the export itself is untouched
    result = export("v2_x0_5", "onnx", weights="random", img_size=TEST_IMG_SIZE, out=export_dir, progress=False)
    assert not _staging(export_dir)
    assert any("left by an export that was killed" in note for note in result.notes)


# ---------------------------------------------------------------- weights travel with the export


def test_a_checkpoint_export_verifies_from_anywhere_and_after_a_move(tmp_path, monkeypatch):
    checkpoint = tmp_path / "work" / "digits.pt"
    checkpoint.parent.mkdir()
    shutil.copyfile(DIGITS, checkpoint)
    monkeypatch.chdir(tmp_path / "work")
    result = run_cli("export", "--weights", "digits.pt", "--target", "onnx", "--out", "exp", "-q")
    assert result.exit_code == 0, result.stderr
    manifest = read_manifest(tmp_path / "work" / "exp")
    assert manifest["weights"]["file"] == "weights.pt" and manifest["weights"]["source"] == str(checkpoint)

    elsewhere = tmp_path / "elsewhere"
    shutil.move(tmp_path / "work" / "exp", elsewhere)
    checkpoint.unlink()
    monkeypatch.chdir(tmp_path)
    assert run_cli("verify", elsewhere, "--samples", "2").exit_code == 0

    (elsewhere / "weights.pt").unlink()
    missing = run_cli("verify", elsewhere, "--samples", "2")
    assert_one_line_error(missing, "copy of its checkpoint", "pass --weights PATH", str(checkpoint))
    assert run_cli("verify", elsewhere, "--samples", "2", "--weights", DIGITS).exit_code == 0
    other = tmp_path / "other.pt"
    other.write_bytes(DIGITS.read_bytes() + b"\0")
    assert_one_line_error(run_cli("verify", elsewhere, "--weights", other), "is not the checkpoint this export was made from")
