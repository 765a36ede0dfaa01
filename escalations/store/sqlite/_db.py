"""The SQLite connection discipline every part of the store shares: one connection per thread,
``isolation_level=None`` with explicit ``BEGIN IMMEDIATE`` transactions, WAL with
``synchronous=FULL``, foreign keys on, a busy timeout; numbered forward-only migrations tracked
with ``PRAGMA user_version``; times as fixed-format UTC text that sorts as it compares."""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from escalations.clock import Clock
from escalations.errors import StoreError
from escalations.store.base import Fence

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
BUSY_TIMEOUT_MS = 5000
_STORED_LENGTH = len("2026-01-01T00:00:00.000000Z")
_MIGRATION_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")


def to_db(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}; the store keeps aware UTC times")
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def from_db(value: str | None) -> datetime | None:
    if value is None:
        return None
    if len(value) == _STORED_LENGTH and value[-1] == "Z" and value[10] == "T":
        # what ``to_db`` writes: ``fromisoformat`` reads it (and its "Z") about ten times
        # faster than ``strptime``, the largest share of the client's CPU in the bench
        return datetime.fromisoformat(value)
    return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC)


def db_time(value: str) -> datetime:
    result = from_db(value)
    assert result is not None
    return result


@functools.cache  # a handful of column names, asked for every column of every row read
def is_time_column(column: str) -> bool:
    return column.endswith(("_at", "_until")) or column in ("value", "signpost", "not_before")


def parse_times(values: dict[str, Any]) -> dict[str, Any]:
    """Parse every time column (``*_at``, ``*_until`` and a few others) of a row dict in place."""
    for column, value in values.items():
        if is_time_column(column) and isinstance(value, str):
            values[column] = db_time(value)
    return values


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migrations shipped in ``escalations/store/migrations``, numbered 1, 2, … in order."""
    found = []
    for entry in resources.files("escalations.store.migrations").iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations are not numbered 1..n: {[m.name for m in found]}")
    return found


def _statements(sql: str) -> Iterator[str]:
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    if buffer.strip() and not all(
        not ln.strip() or ln.strip().startswith("--") for ln in buffer.splitlines()
    ):
        raise StoreError(f"incomplete SQL statement at the end of a migration: {buffer[:80]!r}")


class SqliteTransaction:
    """The handle write methods take; valid only inside its ``with`` block and thread."""

    __slots__ = ("active", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.active = True


class SqliteBase:
    """Connections, transactions and migrations; the concern mixins build on it."""

    clock: Clock

    def __init__(self, path: Path | str, clock: Clock) -> None:
        self.path = Path(path)
        if str(path) == ":memory:" or str(path).startswith("file:"):
            raise StoreError("the SQLite store needs a file path")
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        try:
            self._version = self._migrate(self._conn())
        except BaseException:
            self.close()
            raise

    @property
    def schema_version(self) -> int:
        return self._version

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._local.tx = None
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,  # closed from any thread by close(); used by one
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the database: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL (journal_mode is {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"{self.path}: not a usable SQLite database: {exc}") from exc
        except StoreError:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> int:
        from escalations.store import sqlite as package  # tests may replace its list

        migrations = package.load_migrations()
        latest = len(migrations)
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > latest:
                raise StoreError(
                    f"{self.path}: database schema version {version} is newer than this code "
                    f"understands ({latest}); upgrade helpdesk-escalations or restore a backup"
                )
            for migration in migrations[version:]:
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {migration.version}")
            conn.execute("COMMIT")
        except BaseException as exc:
            conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: migration failed: {exc}") from exc
            raise
        return latest

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SqliteTransaction]:
        conn = self._conn()
        if self._local.tx is not None:
            raise StoreError("transactions do not nest; pass the open 'tx' down instead")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # busy past busy_timeout, read-only, disk I/O
            raise StoreError(f"{self.path}: cannot start a transaction: {exc}") from exc
        tx = SqliteTransaction(conn)
        self._local.tx = tx
        try:
            fence: Fence | None = getattr(self._local, "fence", None)
            if fence is not None:  # under the write lock (BEGIN IMMEDIATE) until COMMIT
                row = conn.execute(
                    "SELECT holder, epoch FROM lease WHERE name = ?", (fence.name,)
                ).fetchone()
                fence.check(None if row is None else (str(row[0]), int(row[1])))
            yield tx
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            tx.active = False
            self._local.tx = None

    @contextlib.contextmanager
    def fence(self, name: str, *, holder: str, epoch: int) -> Iterator[None]:
        """``Leases.fence``: this thread's write transactions check the lease first."""
        previous = getattr(self._local, "fence", None)
        self._local.fence = Fence(name, holder, epoch)
        try:
            yield
        finally:
            self._local.fence = previous

    def _tx(self, tx: object) -> sqlite3.Connection:
        current: SqliteTransaction | None = getattr(self._local, "tx", None)
        if current is None or tx is not current or not current.active:
            raise StoreError("a write needs the open transaction of this store and thread")
        return current.conn

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._closed = True

    def integrity_check(self) -> list[str]:
        return [row[0] for row in self._conn().execute("PRAGMA integrity_check")]
