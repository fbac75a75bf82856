"""Shared test helpers: CLI invocation, a local HTTP server, temporary weights cache."""

from __future__ import annotations

import copy
import hashlib
import http.server
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from shufflenet_deploy.cli import main

# Parallel test workers share 2 cores: one thread each, or OpenMP spin-waiting slows some ops 40x.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the subprocesses tests start

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict | None = None) -> CliResult:
    """Run ``sdeploy`` in-process (fast; monkeypatches apply)."""
    result = CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


def run_sdeploy(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 600) -> CliResult:
    """Run the real ``sdeploy`` entry point in a subprocess (what users type)."""
    proc = subprocess.run(
        [sys.executable, "-m", "shufflenet_deploy", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: CliResult, *fragments: str, code: int = 2) -> None:
    """A user error: the expected exit code, one ``Error:`` line naming the problem, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


class FileServer:
    """Serves in-memory files on 127.0.0.1; a file can be set to drop the connection half-way."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncated: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                name = self.path.lstrip("/")
                server.requests.append(name)
                if name not in server.files:
                    self.send_error(404)
                    return
                body = server.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if name in server.truncated else body)
                self.wfile.flush()
                if name in server.truncated:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server():
    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache, so no test sees (or pollutes) the user's."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def gray_image(tmp_path):
    """A small image file, for commands that need one."""
    import numpy as np
    from PIL import Image

    path = tmp_path / "gray.png"
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(path)
    return str(path)


# ---------------------------------------------------------------- shared exports

TEST_IMG_SIZE = 64  # small inputs keep CI fast; every code path is the same as at 224


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory, worker_id):
    """``get(arch, targets, **options) -> export dir``: each distinct export runs once per test session.

    The cache lives where every xdist worker sees it; a lock file makes a
    second worker wait for the first one's export instead of repeating it.
    """
    import fcntl
    import hashlib
    import json

    from shufflenet_deploy import export

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if worker_id != "master" else base) / "export-cache"
    root.mkdir(exist_ok=True)

    def get(arch: str, targets: str = "all", weights: str = "random", img_size: int = TEST_IMG_SIZE, **options) -> Path:
        key = json.dumps([arch, targets, weights, img_size, sorted(options.items())], default=str)
        folder = root / f"{arch}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
        with open(f"{folder}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (folder / "sdeploy.json").exists():
                result = export(arch, targets, weights=weights, out=folder, img_size=img_size, progress=False, **options)
                assert result.ok, result.to_dict()
        return folder

    return get


def faulty_exporter(target: str, unit: str, monkeypatch):
    """Make ``target``'s converter scale the first conv of ``unit`` by 1.3, as a converter bug would.

    The conv is recognised by its weights, not its name, so the fault follows it into the truncated networks
    that ``--locate`` exports.
    """
    from shufflenet_deploy import load_model
    from shufflenet_deploy.backends import get_backend

    reference = load_model("v2_x0_5", "random").model
    victim = next(m for m in reference.get_submodule(unit).modules() if isinstance(m, torch.nn.Conv2d))
    fingerprint = hashlib.sha256(victim.weight.detach().numpy().tobytes()).hexdigest()
    converter = type(get_backend(target).target)
    original = converter.export

    def export_with_fault(self, ctx):
        ctx.model = copy.deepcopy(ctx.model)
        for module in ctx.model.modules():
            if isinstance(module, torch.nn.Conv2d):
                if hashlib.sha256(module.weight.detach().numpy().tobytes()).hexdigest() == fingerprint:
                    with torch.no_grad():
                        module.weight.mul_(1.3)
        return original(self, ctx)

    monkeypatch.setattr(converter, "export", export_with_fault)


def assert_verifies_in_one_xnnpack_partition(export_dir, runtime: str, **kwargs):
    """verify passes, and ``runtime`` (first: the format's own) ran the artifact as one XNNPACK partition."""
    from shufflenet_deploy import verify

    report = verify(export_dir, progress=False, **kwargs)
    assert report.passed, [(r.key, r.status, r.max_abs_error, r.atol, r.error, r.reason) for r in report.runtimes]
    assert report.runtimes[0].runtime == runtime and "XNNPACK (1 partition)" in report.runtimes[0].description
    return report
