"""The one exception type that reaches users.

Library code raises :class:`SdeployError` for every problem a user can fix
(bad arch name, missing file, wrong checkpoint...).  The CLI prints its
message as a single ``Error: ...`` line and exits with ``exit_code``; any
other exception is a bug in sdeploy and keeps its traceback.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable
from pathlib import Path

USAGE_EXIT_CODE = 2
#: A valid request whose operation failed (full disk, failed download, failed export or verification).
FAILURE_EXIT_CODE = 1


class SdeployError(Exception):
    """A problem with the user's input, environment or files."""

    def __init__(self, message: str, exit_code: int = USAGE_EXIT_CODE):
        # Messages must stay one line: the CLI contract is "one clear line".
        super().__init__(" ".join(message.split("\n")))
        self.exit_code = exit_code


class MissingDependencyError(SdeployError):
    """An optional converter or runtime package is not importable."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = ""):
        hint = f'pip install "shufflenet-deploy[{extra}]"' if extra else f"pip install {package}"
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"the Python package '{package}' is not installed{what}; install it with: {hint}")
        self.package = package


def require_modules(modules: Iterable[str], extra: str, purpose: str, error: type = MissingDependencyError) -> None:
    """Import each module; the first missing one raises ``error`` naming its package and the extra to install."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise error(module.split(".")[0], extra, purpose) from None


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The modules that cannot be found, without importing any (some take seconds to import)."""
    import importlib.util

    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    return missing


def closest_names(name: str, choices: Iterable[str], limit: int = 3) -> list[str]:
    """Names from ``choices`` that look like a typo of ``name``."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=limit, cutoff=0.5)
    if close:
        return close
    # "v1_g3" or "x1_0" alone are not typos but prefixes/fragments: offer matches.
    return [c for c in choices if name and name in c][:limit]


def unknown_name_error(kind: str, name: str, choices: Iterable[str], list_hint: str) -> SdeployError:
    close = closest_names(name, choices)
    suggestion = f"did you mean {', '.join(close)}? " if close else ""
    return SdeployError(f"unknown {kind} '{name}': {suggestion}{list_hint}")


def describe_os_error(exc: OSError, where: Path | str, needed: int | None = None) -> str:
    """One line for a failed file operation; on a full disk, the free space and (if known) what is needed."""
    path = exc.filename or where
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        from .fsutil import free_bytes

        free = free_bytes(Path(path))
        room = f", {free / 1e6:.1f} MB free" if free is not None else ""
        need = f", about {needed / 1e6:.0f} MB needed" if needed else ""
        return f"no space left on the device while writing {path}{room}{need}; free some space or choose another folder"
    return f"cannot use {path}: {exc.strerror or exc}"


def os_error(exc: OSError, where: Path | str, needed: int | None = None) -> SdeployError:
    """:func:`describe_os_error` as the error users see: exit code 1, the operation failed."""
    return SdeployError(describe_os_error(exc, where, needed), exit_code=FAILURE_EXIT_CODE)
