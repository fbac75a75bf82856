"""Progress display for long-running work, always on stderr so stdout stays machine-readable."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click


@contextmanager
def progress_bar(total: int | None, label: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield an ``advance(n)`` callback; a bar when ``total`` is known, a single line otherwise."""
    if not enabled:
        yield lambda n: None
        return
    if not total:
        click.echo(f"{label} ...", err=True)
        yield lambda n: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True) as bar:
        yield bar.update


def status(message: str, enabled: bool = True) -> None:
    if enabled:
        click.echo(message, err=True)


class Task:
    """A long step: live elapsed seconds on a terminal, start and end lines otherwise."""

    def __init__(self, label: str, enabled: bool = True, stream=None):
        self.label = label
        self.enabled = enabled
        # Bind the stream now: converters' output is redirected while the task runs.
        self.stream = stream or sys.stderr
        self.started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Task:
        self.started = time.perf_counter()
        if not self.enabled:
            return self
        if self.stream.isatty():
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        else:
            self._write(f"{self.label} ...\n")
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
            self._write("\r\033[K")

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def done(self, message: str) -> None:
        if self.enabled:
            self._stop.set()
            if self._thread:
                self._thread.join()
                self._thread = None
                self._write("\r\033[K")
            self._write(f"{self.label}: {message} ({self.elapsed:.1f}s)\n")

    def _tick(self) -> None:
        frames = "|/-\\"
        i = 0
        while not self._stop.wait(0.2):
            self._write(f"\r{frames[i % 4]} {self.label} ... {self.elapsed:.0f}s")
            i += 1

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
