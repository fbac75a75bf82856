"""Progress display for long-running work, always on stderr so stdout stays machine-readable."""

from __future__ import annotations

import sys
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
