"""One directory per archived escalation, written so that a crash never leaves a half archive
that counts as done.

The files are written into a temporary directory beside the final one (same file system),
each with mode 0600 and fsynced, directories 0700; ``manifest.json`` (the SHA-256 and size of
every other file) is written last; the directory is fsynced and renamed into place, and the
parent fsynced. A directory under its final name is therefore complete, and ``verify`` can
prove it; a temporary one left by a crash is removed by the next ``write``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"
INCOMING = ".incoming-"
"""Prefix of a temporary directory: never an archive."""
PURGING = ".purging-"
"""Prefix of an archive being removed by retention: renamed first, then deleted."""
CLEARING = ".clearing-"
"""Prefix of a temporary directory being removed: renamed first, then deleted."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Written:
    path: Path
    manifest_sha256: str
    """SHA-256 of ``manifest.json``: what the store records, and what a purge logs."""


def directory_name(key: str, closed_stamp: str) -> str:
    """``zammad-ticket-123-1_20261204T150000Z``: the escalation's key and its close, in
    characters safe on every file system."""
    return f"{_UNSAFE.sub('-', key)}_{_UNSAFE.sub('', closed_stamp)}"


def write(
    root: Path,
    name: str,
    files: Mapping[str, bytes],
    *,
    step: Callable[[str], None] = lambda _: None,
) -> Written:
    """Write ``files`` (relative POSIX paths → bytes) as the archive ``root/name``. An archive
    already there under that name is kept as it is (a crash after the rename: the same
    archive) when it verifies, and an error otherwise. ``step`` is called with the name of
    each step reached (the crash points of the tests)."""
    _make_dir(root)
    clear_incoming(root, name)
    final = root / name
    if final.exists():
        return adopt(final)
    temp = Path(tempfile.mkdtemp(prefix=f"{INCOMING}{name}-", dir=root))
    try:
        _fill(temp, files)
    except Exception:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    step("archive.files_written")
    temp.rename(final)
    _fsync_dir(root)
    return Written(final, _sha256(final / MANIFEST))


def adopt(path: Path) -> Written:
    """The archive already in place at ``path`` (written by a run that did not record it),
    when it verifies; ``ArchiveDamaged`` otherwise."""
    problems = verify(path)
    if problems:
        raise ArchiveDamaged(path, problems)
    return Written(path, _sha256(path / MANIFEST))


def _fill(temp: Path, files: Mapping[str, bytes]) -> None:
    temp.chmod(0o700)
    entries: dict[str, dict[str, object]] = {}
    for relative, data in sorted(files.items()):
        path = _inside(temp, relative)
        _make_dir(path.parent)
        _write_file(path, data)
        entries[relative] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest = json.dumps({"version": 1, "files": entries}, indent=2, sort_keys=True).encode()
    _write_file(temp / MANIFEST, manifest + b"\n")
    for directory in sorted({p.parent for p in temp.rglob("*")}, key=lambda p: -len(p.parts)):
        _fsync_dir(directory)


def verify(path: Path) -> list[str]:
    """Every problem with the archive at ``path``, one line each naming the file; empty when
    every file is there with its checksum and nothing else is."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        entries = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{path / MANIFEST}: unreadable ({exc})"]
    problems = []
    for relative, entry in sorted(entries.items()):
        file = path / relative
        try:
            data = file.read_bytes()
        except OSError:
            problems.append(f"{file}: missing")
            continue
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            problems.append(f"{file}: checksum differs from the manifest")
    listed = {path / r for r in entries} | {path / MANIFEST}
    for extra in sorted(p for p in path.rglob("*") if p.is_file() and p not in listed):
        problems.append(f"{extra}: not in the manifest")
    return problems


class ArchiveDamaged(Exception):
    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__(f"{path}: the archive is damaged: {'; '.join(problems)}")
        self.path = path
        self.problems = problems


def _inside(root: Path, relative: str) -> Path:
    path = (root / relative).resolve()
    if root.resolve() not in path.parents:
        raise ValueError(f"{relative!r} is outside the archive")
    return path


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _make_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clear_incoming(root: Path, name: str) -> None:
    """Remove the temporary directories of ``name`` that runs before this one left. Each is
    renamed first, then deleted: a run still writing one (a leader paused past its lease)
    either renamed it into place before (it is then found complete under ``name``) or finds
    it gone and fails; it never places a directory half deleted."""
    if not root.exists():
        return
    for doomed in root.glob(f"{CLEARING}{INCOMING}{name}-*"):
        shutil.rmtree(doomed, ignore_errors=True)  # a crash in the middle of a clearing
    for stale in root.glob(f"{INCOMING}{name}-*"):
        doomed = root / f"{CLEARING}{stale.name}"
        try:
            stale.rename(doomed)
        except FileNotFoundError:
            continue  # renamed into place (or cleared) meanwhile
        shutil.rmtree(doomed, ignore_errors=True)


def sweep_cleared(root: Path) -> None:
    """Delete what a clearing left (``clear_incoming`` renames, then deletes): a run killed
    in the middle, or one paused while writing into a directory another run was clearing."""
    if not root.exists():
        return
    for doomed in root.glob(f"{CLEARING}*"):
        shutil.rmtree(doomed, ignore_errors=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def begin_purge(path: Path) -> Path:
    """Take the archive at ``path`` out of place (one rename) before it is recorded as
    purged; a crash leaves it under ``.purging-<name>``, and ``purging(path)`` finds it."""
    target = purging(path)
    if path.exists():
        path.rename(target)
        _fsync_dir(path.parent)
    return target


def purging(path: Path) -> Path:
    return path.parent / f"{PURGING}{path.name}"


def finish_purge(path: Path) -> None:
    """Delete an archive taken out of place (``begin_purge``), once its purge is recorded."""
    shutil.rmtree(purging(path), ignore_errors=True)
    if path.parent.exists():
        _fsync_dir(path.parent)
