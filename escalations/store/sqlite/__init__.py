"""The SQLite store: one file, WAL, ``synchronous=FULL``, one connection per thread, explicit
``BEGIN IMMEDIATE`` transactions, numbered forward-only migrations tracked with ``PRAGMA
user_version`` (``_db``), one module per concern of the store protocol (``records``,
``outbox``, ``sync_state``, ``known_articles``, ``runlog``), and a single-host lock
(``fcntl.flock`` on ``<database>.lock``).

The lock is the single-host guard: the worker that holds it is the only one on this store, so
any claim another worker id left on an in-flight effect belongs to a process that is gone;
taking the lock releases those claims (``release_claims``), and each such effect is taken again
through the look-before-write once its settle window has passed. Leadership of the poll and
the timed jobs is a lease row on top (``acquire_lease``), as it will be on PostgreSQL.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from escalations.clock import Clock
from escalations.errors import LockHeld
from escalations.store.sqlite._db import (
    TIME_FORMAT,
    Migration,
    from_db,
    load_migrations,
    to_db,
)
from escalations.store.sqlite.known_articles import KnownArticlesMixin
from escalations.store.sqlite.outbox import OutboxMixin
from escalations.store.sqlite.records import EscalationRecordsMixin
from escalations.store.sqlite.runlog import RunLogMixin
from escalations.store.sqlite.sync_state import SyncStateMixin


def lock_path_of(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def _held_message(fd: int, database: Path) -> str:
    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    who = f"pid {holder}" if holder.isdigit() else "another process"
    return (
        f"another worker ({who}) is running on {database} "
        f"(lock file {lock_path_of(database)}); only one worker may use a store"
    )


def probe_lock(database: Path) -> str | None:
    """Why ``acquire_lock`` would fail now (another worker holds the lock), or ``None``;
    takes nothing and creates nothing (``escalations check``)."""
    try:
        fd = os.open(lock_path_of(database), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _held_message(fd, database)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class SqliteStore(
    EscalationRecordsMixin, OutboxMixin, SyncStateMixin, KnownArticlesMixin, RunLogMixin
):
    def __init__(self, path: Path | str, clock: Clock) -> None:
        self._lock_fd: int | None = None
        super().__init__(path, clock)

    @property
    def lock_path(self) -> Path:
        return lock_path_of(self.path)

    def acquire_lock(self, *, worker: str = "") -> None:
        """Take the single-host lock, or raise ``LockHeld``; then release the claims and the
        job leases left by any other worker id, and forget those workers (see the module
        docstring): a SQLite file is used from one host, and holding its lock proves no other
        worker is alive on it."""
        if self._lock_fd is not None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = _held_message(fd, self.path)
            os.close(fd)
            raise LockHeld(message) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        with self.transaction() as tx:
            self.release_claims(tx, except_worker=worker)
            self.release_leases(tx, except_holder=worker)
            self._tx(tx).execute("DELETE FROM worker WHERE id != ?", (worker,))

    def release_lock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def close(self) -> None:
        self.release_lock()
        super().close()


__all__ = ["TIME_FORMAT", "Migration", "SqliteStore", "from_db", "load_migrations", "to_db"]
