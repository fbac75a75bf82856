"""The export directory as a transaction: staged writes, one short commit under a lock, recovery after a crash.

An export writes its artifacts into a private staging folder.  Nothing in
the directory changes until every target has finished; then, holding the
directory's lock, the commit moves the previous versions of the files it
replaces into a backup folder, moves the new files in, and writes
``sdeploy.json`` last.  Writing the manifest is the commit point:

* before it, the old manifest still describes the old files, which a
  journal lets the next process put back (an interrupted commit rolls back);
* after it, the backup is only garbage, which the next process removes.

Staging and backup folders carry the writer's pid, so a later export can tell
a killed writer's leftovers from a live one's work and remove them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import SdeployError
from .fsutil import remove_path, write_text_atomic
from .sysutil import pid_alive

LOCK_NAME = ".sdeploy.lock"
JOURNAL_NAME = ".sdeploy-journal.json"
STAGING_PREFIX = ".sdeploy-staging-"
BACKUP_PREFIX = ".sdeploy-backup-"
#: Leftovers of our own writers: staging and backup folders, and atomic_path's temporaries.
_OWNED = re.compile(rf"^(?:{re.escape(STAGING_PREFIX)}|{re.escape(BACKUP_PREFIX)})(\d+)$|^\..+\.(\d+)\.tmp$")


@contextlib.contextmanager
def locked(export_dir: Path) -> Iterator[None]:
    """Hold the directory's exclusive lock: one writer at a time, and readers never see half a commit."""
    with open(export_dir / LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def staging_dir(export_dir: Path) -> Path:
    return export_dir / f"{STAGING_PREFIX}{os.getpid()}"


def tidy(export_dir: Path) -> list[str]:
    """Finish or roll back an interrupted commit and remove dead writers' leftovers; call under :func:`locked`."""
    notes = recover(export_dir)
    for entry in export_dir.iterdir():
        match = _OWNED.match(entry.name)
        pid = int(next(group for group in match.groups() if group)) if match else None
        if pid is not None and pid != os.getpid() and not pid_alive(pid):
            remove_path(entry)
            notes.append(f"removed {entry.name}, left by an export that was killed")
    return notes


def recover(export_dir: Path) -> list[str]:
    journal_path = export_dir / JOURNAL_NAME
    if not journal_path.exists():
        return []
    try:
        journal = json.loads(journal_path.read_text("utf-8"))
        backup, names, committed = export_dir / journal["backup"], journal["files"], journal["manifest_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise SdeployError(f"{journal_path} is damaged; remove it and re-export with --force") from None
    if _manifest_sha256(export_dir) == committed:
        note = "completed the previous export's commit (it was interrupted after writing its manifest)"
    else:
        for name in _safe_names(names):
            remove_path(export_dir / name)
            if (backup / name).exists() or (backup / name).is_symlink():
                os.replace(backup / name, export_dir / name)
        note = "rolled back an export that was interrupted while committing; the previous export is intact"
    remove_path(backup)
    journal_path.unlink()
    return [note]


def _safe_names(names: list) -> list[str]:
    return [n for n in names if isinstance(n, str) and n and "/" not in n and "\\" not in n and n not in (".", "..")]


def _manifest_sha256(export_dir: Path) -> str | None:
    from .manifest import MANIFEST_NAME

    path = export_dir / MANIFEST_NAME
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


@dataclass
class Commit:
    """Files to move from staging into the directory, files to drop, and the manifest text to write last."""

    moves: dict[str, Path]  # final name -> staged path
    removals: list[str]
    manifest_text: str


def commit(export_dir: Path, change: Commit) -> None:
    """Apply ``change`` so that a crash at any point leaves either the old export or the new one; call under the lock."""
    from .manifest import MANIFEST_NAME

    backup = export_dir / f"{BACKUP_PREFIX}{os.getpid()}"
    names = list(dict.fromkeys([*change.moves, *change.removals]))
    manifest_sha = hashlib.sha256(change.manifest_text.encode()).hexdigest()
    backup.mkdir(exist_ok=True)
    try:
        journal = {"backup": backup.name, "files": names, "manifest_sha256": manifest_sha}
        write_text_atomic(export_dir / JOURNAL_NAME, json.dumps(journal))
        for name in names:
            current = export_dir / name
            if current.exists() or current.is_symlink():
                os.replace(current, backup / name)
        for name, staged in change.moves.items():
            os.replace(staged, export_dir / name)
        write_text_atomic(export_dir / MANIFEST_NAME, change.manifest_text)
    except BaseException:
        # Before the manifest is written the old export is put back; after it, the new one stands.
        if (export_dir / JOURNAL_NAME).exists():
            recover(export_dir)
        remove_path(backup)
        raise
    (export_dir / JOURNAL_NAME).unlink()
    remove_path(backup)
