"""Process-level helpers used in several places: thread counts, quiet converters, temp folders, live pids."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

#: More threads than any phone or workstation core count: a bigger request is a typo.
MAX_THREADS = 256
#: Loggers that torch's own exporters use; each backend adds its converter's (Backend.loggers).
TORCH_LOGGERS = ("torch.onnx", "torch._dynamo", "torch.export", "torch.fx")


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` intra-op threads (None: leave as is), then restore the caller's setting."""
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def quiet_loggers(names: tuple[str, ...] = TORCH_LOGGERS, level: int = logging.ERROR) -> Iterator[None]:
    """Raise these loggers to ``level`` and silence Python warnings for the block."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, previous in zip(loggers, levels, strict=True):
            logger.setLevel(previous)


@contextlib.contextmanager
def captured_output(log: io.StringIO, loggers: tuple[str, ...] = TORCH_LOGGERS, enabled: bool = True) -> Iterator[None]:
    """Converters print banners, progress bars and warnings: send them to ``log`` instead of the terminal."""
    if not enabled:
        yield
        return
    with quiet_loggers(loggers), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), native_stderr_to_python():
        yield


@contextlib.contextmanager
def native_stderr_captured(lines: list[str]) -> Iterator[None]:
    """Capture what native code writes to file descriptor 2 during the block into ``lines``, once it ends.

    C++ converters and runtimes (absl, TFLite, oneDNN, ExecuTorch's cpuinfo) log straight to descriptor 2,
    past ``contextlib.redirect_stderr``.
    """
    if sys.__stderr__ is None:  # no descriptor 2 to take over (pythonw, some embedders)
        yield
        return
    sys.__stderr__.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", errors="replace").splitlines(keepends=True))


@contextlib.contextmanager
def native_stderr_to_python(drop: tuple[str, ...] = ()) -> Iterator[None]:
    """Send native code's descriptor-2 output in the block to Python's ``sys.stderr``, minus the lines in ``drop``,
    so it lands in the export log like everything else."""
    lines: list[str] = []
    try:
        with native_stderr_captured(lines):
            yield
    finally:
        sys.stderr.write("".join(line for line in lines if line.rstrip() not in drop))


@contextlib.contextmanager
def private_tempdir(folder: Path) -> Iterator[Path]:
    """Point ``tempfile`` and child processes' TMPDIR at ``folder`` for the block.

    Converters (coremltools, pnnx, onnxruntime's quantizer...) write temporary
    files of their own; kept inside our staging folder, they go when it goes,
    whatever way the export ends.
    """
    folder.mkdir(parents=True, exist_ok=True)
    # torch's compile cache is a cache, not a temporary file, and the compile workers torch.export may start
    # create it after an interrupted export has removed its staging: keep it where torch keeps it by default.
    pinned = {"TMPDIR": str(folder), INDUCTOR_CACHE_ENV: os.environ.get(INDUCTOR_CACHE_ENV, _default_inductor_cache())}
    previous_dir, previous_env = tempfile.tempdir, {name: os.environ.get(name) for name in pinned}
    tempfile.tempdir = str(folder)
    os.environ.update(pinned)
    try:
        yield folder
    finally:
        tempfile.tempdir = previous_dir
        for name, value in previous_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def _default_inductor_cache() -> str:
    """torch's own default: ``<temp dir>/torchinductor_<user>``."""
    import getpass

    try:
        user = getpass.getuser()
    except Exception:  # no user name (some containers): torch falls back the same way
        user = "unknown"
    return os.path.join(tempfile.gettempdir(), f"torchinductor_{user}")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (ours included)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_INTERRUPTED = threading.Event()


def on_interrupt(signum, frame) -> None:
    """Signal handler for Ctrl-C and SIGTERM: remember it, and unwind now.

    A converter may swallow the KeyboardInterrupt raised inside its own code
    (some catch everything around C++ callbacks), so the flag stays set and
    :func:`check_interrupted` raises it again at the next safe point: an
    interrupted export never commits.
    """
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def check_interrupted() -> None:
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_handlers() -> Iterator[None]:
    """Ctrl-C and SIGTERM both unwind through :func:`on_interrupt` for the block (main thread only)."""
    signals = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, on_interrupt) for s in signals}
    _INTERRUPTED.clear()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
