"""``sdeploy demo web``: serve the web demo from 127.0.0.1 with the MIME types onnxruntime-web needs."""

from __future__ import annotations

import functools
import http.server
from pathlib import Path

from ..errors import SdeployError

#: Browsers refuse to compile WebAssembly served with another type, or to import modules as octet-stream.
MIME_TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript", ".onnx": "application/octet-stream"}
RUNTIME_DIR = "node_modules/onnxruntime-web/dist"
#: Makes the page ``crossOriginIsolated`` (in a secure context: https, localhost or 127.0.0.1).
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


class DemoRequestHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def end_headers(self) -> None:
        # A re-bundled model must not be served from the browser cache.
        self.send_header("Cache-Control", "no-store")
        # Cross-origin isolation: without it browsers withhold SharedArrayBuffer, so onnxruntime-web
        # cannot use wasm threads. Everything the page loads is same-origin, so require-corp costs nothing.
        for name, value in ISOLATION_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        pass


def check_web_demo(root: Path) -> None:
    if not (root / "index.html").is_file():
        raise SdeployError(f"{root} is not the web demo (no index.html); run from the repository root or pass --dir")
    if not (root / RUNTIME_DIR).is_dir():
        raise SdeployError(f"onnxruntime-web is not installed in {root}: run 'npm ci' in {root}")
    if not (root / "model" / "model.json").is_file():
        raise SdeployError(f"no model bundled in {root / 'model'}: run 'sdeploy bundle --app web --arch v2_x0_5' first")


def make_server(root: Path, host: str = "127.0.0.1", port: int = 8000) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(DemoRequestHandler, directory=str(root))
    try:
        return http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise SdeployError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port") from None
