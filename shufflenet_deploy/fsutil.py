"""Atomic writes and content hashes for files and directories (an .mlpackage is a directory)."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``dest``; it replaces ``dest`` only if the block succeeds."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    remove_path(tmp)
    try:
        yield tmp
        replace_path(tmp, dest)
    finally:
        remove_path(tmp)


def write_text_atomic(dest: Path, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")


def replace_path(src: Path, dest: Path) -> None:
    """``os.replace`` that also works when ``dest`` is an existing directory."""
    if dest.is_dir() and not dest.is_symlink():
        old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
        remove_path(old)
        os.replace(dest, old)
        try:
            os.replace(src, dest)
        except OSError:
            os.replace(old, dest)  # put the previous version back
            raise
        remove_path(old)
    else:
        os.replace(src, dest)


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def tree_sha256(path: Path) -> str:
    """A file's sha256; for a directory, the sha256 of its files' relative paths and hashes."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in tree_files(path):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in tree_files(path))


def check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and prove a file can be written there, before any long work starts."""
    from .errors import SdeployError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".sdeploy-write-test.{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SdeployError(f"cannot write to {folder} ({exc.strerror or exc}); choose another {what}") from None


def free_bytes(folder: Path) -> int | None:
    """Free space on the filesystem holding ``folder`` (its nearest existing parent), or None if unknown."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def read_json_file(path: Path, what: str, max_bytes: int, hint: str = ""):
    """A JSON document from an untrusted file: missing, oversized or malformed is one SdeployError naming ``what``."""
    import json

    from .errors import SdeployError

    if not path.is_file():
        raise SdeployError(f"{what} {path} is not a file{hint}")
    if path.stat().st_size > max_bytes:
        raise SdeployError(f"{what} {path} is over {max_bytes >> 20} MB, which sdeploy never writes{hint}")
    try:
        return json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise SdeployError(f"{what} {path} is not valid JSON ({str(exc)[:80]}){hint}") from None
