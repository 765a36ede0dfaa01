"""The SQLite store: one file, WAL, ``synchronous=FULL``, one connection per thread, explicit
``BEGIN IMMEDIATE`` transactions, numbered migrations tracked with ``PRAGMA user_version``, and
a single-worker lock (``fcntl.flock`` on ``<database>.lock``)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from connector.base import Marker
from escalations.clock import Clock
from escalations.errors import LockHeld, StoreError
from escalations.models import (
    TERMINAL_STATES,
    CarrierContact,
    CopiedArticle,
    Duty,
    Effect,
    EffectState,
    Escalation,
    LevelChange,
    State,
)
from escalations.store.base import (
    LAST_SUCCESSFUL_POLL,
    Cursor,
    Duplicate,
    JobRun,
    ScanRequest,
    StatusSummary,
)

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
BUSY_TIMEOUT_MS = 5000
_MIGRATION_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")
_ACTIVE = "state NOT IN ('closed', 'archived', 'purged')"
assert {State.CLOSED, State.ARCHIVED, State.PURGED} == TERMINAL_STATES
_DUTY_COLUMNS = "escalation_id, kind, slot, due_at, done_at"


def to_db(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}; the store keeps aware UTC times")
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def from_db(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC)


def _time(value: str) -> datetime:
    result = from_db(value)
    assert result is not None
    return result


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


class SqliteStore:
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
        self._lock_fd: int | None = None
        try:
            self._version = self._migrate(self._conn())
        except BaseException:
            self.close()
            raise

    # -- connections, transactions, lock -------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

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
        migrations = load_migrations()
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
            yield tx
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            tx.active = False
            self._local.tx = None

    def _tx(self, tx: object) -> sqlite3.Connection:
        current: SqliteTransaction | None = getattr(self._local, "tx", None)
        if current is None or tx is not current or not current.active:
            raise StoreError("a write needs the open transaction of this store and thread")
        return current.conn

    def acquire_lock(self) -> None:
        if self._lock_fd is not None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            who = f"pid {holder}" if holder.isdigit() else "another process"
            raise LockHeld(
                f"another worker ({who}) is running on {self.path} "
                f"(lock file {self.lock_path}); only one worker may use a store"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def release_lock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def close(self) -> None:
        self.release_lock()
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._closed = True

    def integrity_check(self) -> list[str]:
        return [row[0] for row in self._conn().execute("PRAGMA integrity_check")]

    # -- escalations ---------------------------------------------------------------------
    _ESC_COLUMNS = tuple(f.name for f in fields(Escalation) if f.name != "id")

    def insert_escalation(self, tx: object, esc: Escalation) -> Escalation:
        conn = self._tx(tx)
        columns = ", ".join(self._ESC_COLUMNS)
        marks = ", ".join("?" for _ in self._ESC_COLUMNS)
        try:
            cur = conn.execute(
                f"INSERT INTO escalation ({columns}) VALUES ({marks})",  # noqa: S608 - fixed names
                _escalation_values(esc),
            )
        except sqlite3.IntegrityError as exc:
            raise _duplicate(esc, exc) from exc
        assert cur.lastrowid is not None
        return replace(esc, id=cur.lastrowid)

    def update_escalation(self, tx: object, esc: Escalation) -> None:
        conn = self._tx(tx)
        assignments = ", ".join(f"{c} = ?" for c in self._ESC_COLUMNS)
        try:
            cur = conn.execute(
                f"UPDATE escalation SET {assignments} WHERE id = ?",  # noqa: S608 - fixed names
                (*_escalation_values(esc), esc.id),
            )
        except sqlite3.IntegrityError as exc:
            raise _duplicate(esc, exc) from exc
        if cur.rowcount != 1:
            raise StoreError(f"escalation {esc.id} does not exist")

    def _escalations(self, where: str, params: tuple[Any, ...] = ()) -> list[Escalation]:
        rows = self._conn().execute(
            f"SELECT * FROM escalation WHERE {where} ORDER BY id",  # noqa: S608 - fixed clauses
            params,
        )
        return [_escalation(row) for row in rows]

    def _one_escalation(self, where: str, params: tuple[Any, ...]) -> Escalation | None:
        found = self._escalations(where, params)
        return found[0] if found else None

    def get_escalation(self, escalation_id: int) -> Escalation | None:
        return self._one_escalation("id = ?", (escalation_id,))

    def escalation_by_key(self, key: str) -> Escalation | None:
        return self._one_escalation("key = ?", (key,))

    def escalation_by_ticket(self, escalation_ticket_id: int) -> Escalation | None:
        return self._one_escalation("escalation_ticket_id = ?", (escalation_ticket_id,))

    def active_escalation_for_ticket(self, original_ticket_id: int) -> Escalation | None:
        return self._one_escalation(f"original_ticket_id = ? AND {_ACTIVE}", (original_ticket_id,))

    def escalations_for_ticket(self, original_ticket_id: int) -> list[Escalation]:
        return self._escalations("original_ticket_id = ?", (original_ticket_id,))

    def escalations_in(self, *states: State) -> list[Escalation]:
        if not states:
            return self._escalations("1")
        marks = ", ".join("?" for _ in states)
        return self._escalations(f"state IN ({marks})", tuple(State(s).value for s in states))

    def active_escalations_for_customer(self, customer_id: int) -> list[Escalation]:
        return self._escalations(f"customer_id = ? AND {_ACTIVE}", (customer_id,))

    # -- what happened to an escalation ------------------------------------------------
    def record_level_change(self, tx: object, change: LevelChange) -> None:
        self._tx(tx).execute(
            "INSERT INTO level_change (escalation_id, from_level, to_level, changed_at,"
            " changed_by_id, reason) VALUES (?, ?, ?, ?, ?, ?)",
            (
                change.escalation_id,
                change.from_level,
                change.to_level,
                to_db(change.changed_at),
                change.changed_by_id,
                change.reason,
            ),
        )

    def level_changes(self, escalation_id: int) -> list[LevelChange]:
        rows = self._conn().execute(
            "SELECT escalation_id, from_level, to_level, changed_at, changed_by_id, reason"
            " FROM level_change WHERE escalation_id = ? ORDER BY id",
            (escalation_id,),
        )
        return [LevelChange(**_times(dict(row))) for row in rows]

    def record_copied_article(self, tx: object, row: CopiedArticle) -> bool:
        cur = self._tx(tx).execute(
            "INSERT INTO copied_article (escalation_id, source_ticket_id, source_article_id,"
            " copy_article_id, copied_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                row.escalation_id,
                row.source_ticket_id,
                row.source_article_id,
                row.copy_article_id,
                to_db(row.copied_at),
            ),
        )
        return cur.rowcount == 1

    def set_copy_article_id(
        self, tx: object, escalation_id: int, source_article_id: int, copy_article_id: int
    ) -> None:
        cur = self._tx(tx).execute(
            "UPDATE copied_article SET copy_article_id = ?"
            " WHERE escalation_id = ? AND source_article_id = ?",
            (copy_article_id, escalation_id, source_article_id),
        )
        if cur.rowcount != 1:
            raise StoreError(
                f"no copied article {source_article_id} recorded for escalation {escalation_id}"
            )

    def copied_articles(self, escalation_id: int) -> list[CopiedArticle]:
        rows = self._conn().execute(
            "SELECT escalation_id, source_ticket_id, source_article_id, copy_article_id,"
            " copied_at FROM copied_article WHERE escalation_id = ? ORDER BY id",
            (escalation_id,),
        )
        return [CopiedArticle(**_times(dict(row))) for row in rows]

    def record_carrier_contact(self, tx: object, row: CarrierContact) -> bool:
        cur = self._tx(tx).execute(
            "INSERT INTO carrier_contact (escalation_id, source_article_id, carrier, stage,"
            " forename, location, user_id, called_at, missing)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                row.escalation_id,
                row.source_article_id,
                row.carrier,
                row.stage,
                row.forename,
                row.location,
                row.user_id,
                to_db(row.called_at),
                json.dumps(list(row.missing)),
            ),
        )
        return cur.rowcount == 1

    def carrier_contacts(self, escalation_id: int) -> list[CarrierContact]:
        rows = self._conn().execute(
            "SELECT escalation_id, source_article_id, carrier, stage, forename, location,"
            " user_id, called_at, missing FROM carrier_contact WHERE escalation_id = ?"
            " ORDER BY id",
            (escalation_id,),
        )
        result = []
        for row in rows:
            values = _times(dict(row))
            values["missing"] = tuple(json.loads(values["missing"]))
            result.append(CarrierContact(**values))
        return result

    def add_duty(self, tx: object, duty: Duty) -> bool:
        cur = self._tx(tx).execute(
            "INSERT INTO duty (escalation_id, kind, slot, due_at, done_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (duty.escalation_id, duty.kind, duty.slot, to_db(duty.due_at), to_db(duty.done_at)),
        )
        return cur.rowcount == 1

    def complete_duty(
        self, tx: object, escalation_id: int, kind: str, slot: str, done_at: datetime
    ) -> bool:
        cur = self._tx(tx).execute(
            "UPDATE duty SET done_at = ? WHERE escalation_id = ? AND kind = ? AND slot = ?"
            " AND done_at IS NULL",
            (to_db(done_at), escalation_id, kind, slot),
        )
        return cur.rowcount == 1

    def duties(
        self,
        escalation_id: int | None = None,
        *,
        due_by: datetime | None = None,
        pending_only: bool = False,
    ) -> list[Duty]:
        clauses: list[str] = []
        params: list[Any] = []
        if escalation_id is not None:
            clauses.append("escalation_id = ?")
            params.append(escalation_id)
        if due_by is not None:
            clauses.append("due_at <= ?")
            params.append(to_db(due_by))
        if pending_only:
            clauses.append("done_at IS NULL")
        where = " AND ".join(clauses) or "1"
        sql = f"SELECT {_DUTY_COLUMNS} FROM duty WHERE {where} ORDER BY due_at, id"  # noqa: S608
        rows = self._conn().execute(sql, params)
        return [Duty(**_times(dict(row))) for row in rows]

    # -- effects -----------------------------------------------------------------------
    def insert_effect(
        self,
        tx: object,
        *,
        kind: str,
        key: str,
        marker: str,
        payload_json: str,
        payload_sha256: str,
        escalation_id: int | None,
        after: tuple[str, str] | None,
        at: datetime,
    ) -> int | None:
        after_kind, after_key = after if after else (None, None)
        cur = self._tx(tx).execute(
            "INSERT INTO effect (kind, key, marker, payload, payload_sha256, escalation_id,"
            " state, not_before, after_kind, after_key, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)"
            " ON CONFLICT (kind, key) DO NOTHING",
            (
                kind,
                key,
                marker,
                payload_json,
                payload_sha256,
                escalation_id,
                to_db(at),
                after_kind,
                after_key,
                to_db(at),
                to_db(at),
            ),
        )
        return cur.lastrowid if cur.rowcount == 1 else None

    def _effects(self, where: str, params: tuple[Any, ...] = ()) -> list[Effect]:
        rows = self._conn().execute(
            f"SELECT * FROM effect WHERE {where} ORDER BY id",  # noqa: S608 - fixed clauses
            params,
        )
        return [_effect(row) for row in rows]

    def get_effect(self, effect_id: int) -> Effect | None:
        found = self._effects("id = ?", (effect_id,))
        return found[0] if found else None

    def effect_by_key(self, kind: str, key: str) -> Effect | None:
        found = self._effects("kind = ? AND key = ?", (kind, key))
        return found[0] if found else None

    def runnable_effects(self, now: datetime) -> list[Effect]:
        return self._effects("state IN ('pending', 'in_flight') AND not_before <= ?", (to_db(now),))

    def effects(self, *states: EffectState, escalation_id: int | None = None) -> list[Effect]:
        clauses: list[str] = []
        params: list[Any] = []
        if states:
            clauses.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(EffectState(s).value for s in states)
        if escalation_id is not None:
            clauses.append("escalation_id = ?")
            params.append(escalation_id)
        return self._effects(" AND ".join(clauses) or "1", tuple(params))

    def claim_effect(self, tx: object, effect_id: int) -> Effect:
        rows = (
            self._tx(tx)
            .execute(
                "UPDATE effect SET state = 'in_flight', attempts = attempts + 1, updated_at = ?"
                " WHERE id = ? AND state IN ('pending', 'in_flight') RETURNING *",
                (to_db(self.clock.now()), effect_id),
            )
            .fetchall()
        )
        if not rows:
            raise StoreError(f"effect {effect_id} cannot be claimed (missing, done or failed)")
        return _effect(rows[0])

    def finish_effect(
        self,
        tx: object,
        effect_id: int,
        state: EffectState,
        *,
        remote_id: str | None = None,
        last_error: str | None = None,
        not_before: datetime | None = None,
    ) -> None:
        cur = self._tx(tx).execute(
            "UPDATE effect SET state = ?, remote_id = COALESCE(?, remote_id), last_error = ?,"
            " not_before = COALESCE(?, not_before), updated_at = ?"
            " WHERE id = ? AND state IN ('pending', 'in_flight')",
            (
                EffectState(state).value,
                remote_id,
                last_error,
                to_db(not_before),
                to_db(self.clock.now()),
                effect_id,
            ),
        )
        if cur.rowcount != 1:
            raise StoreError(f"effect {effect_id} cannot change state (missing, done or failed)")

    # -- polling -----------------------------------------------------------------------
    def get_cursor(self, stream: str) -> Cursor | None:
        row = (
            self._conn().execute("SELECT * FROM sync_cursor WHERE stream = ?", (stream,)).fetchone()
        )
        if row is None:
            return None
        cursor = Cursor(**_times(dict(row)))
        assert cursor.value <= cursor.signpost, f"cursor {stream} is past its signpost"
        return cursor

    def set_cursor(self, tx: object, stream: str, value: datetime, signpost: datetime) -> None:
        if value > signpost:
            raise ValueError(
                f"cursor {stream}: {value.isoformat()} is past the signpost {signpost.isoformat()}"
            )
        self._tx(tx).execute(
            "INSERT INTO sync_cursor (stream, value, signpost, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (stream) DO UPDATE SET value = excluded.value,"
            " signpost = excluded.signpost, updated_at = excluded.updated_at",
            (stream, to_db(value), to_db(signpost), to_db(self.clock.now())),
        )

    def ticket_seen(self, ticket_id: int, updated_at: datetime) -> bool:
        row = (
            self._conn()
            .execute(
                "SELECT 1 FROM seen_ticket WHERE ticket_id = ? AND updated_at >= ?",
                (ticket_id, to_db(updated_at)),
            )
            .fetchone()
        )
        return row is not None

    def note_ticket_seen(self, tx: object, ticket_id: int, updated_at: datetime) -> bool:
        cur = self._tx(tx).execute(
            "INSERT INTO seen_ticket (ticket_id, updated_at) VALUES (?, ?)"
            " ON CONFLICT (ticket_id) DO UPDATE SET updated_at = excluded.updated_at"
            " WHERE excluded.updated_at > seen_ticket.updated_at",
            (ticket_id, to_db(updated_at)),
        )
        return cur.rowcount == 1

    def forget_seen_before(self, tx: object, before: datetime) -> int:
        cur = self._tx(tx).execute("DELETE FROM seen_ticket WHERE updated_at < ?", (to_db(before),))
        return cur.rowcount

    # -- scan requests ----------------------------------------------------------------
    def request_scan(
        self, tx: object, escalation_id: int, ticket_id: int, ticket_number: str, at: datetime
    ) -> bool:
        cur = self._tx(tx).execute(
            "INSERT INTO scan_request (escalation_id, ticket_id, ticket_number, requested_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (escalation_id, ticket_id, ticket_number, to_db(at)),
        )
        return cur.rowcount == 1

    def pending_scans(self) -> list[ScanRequest]:
        rows = (
            self._conn()
            .execute(
                "SELECT escalation_id, ticket_id, ticket_number, requested_at FROM scan_request"
                " ORDER BY requested_at, escalation_id, ticket_id"
            )
            .fetchall()
        )
        return [
            ScanRequest(
                escalation_id=r[0], ticket_id=r[1], ticket_number=r[2], requested_at=_time(r[3])
            )
            for r in rows
        ]

    def clear_scan(self, tx: object, escalation_id: int, ticket_id: int) -> None:
        self._tx(tx).execute(
            "DELETE FROM scan_request WHERE escalation_id = ? AND ticket_id = ?",
            (escalation_id, ticket_id),
        )

    # -- jobs and misc -----------------------------------------------------------------
    def start_job_run(self, tx: object, job: str, started_at: datetime) -> int:
        cur = self._tx(tx).execute(
            "INSERT INTO job_run (job, started_at) VALUES (?, ?)", (job, to_db(started_at))
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish_job_run(
        self,
        tx: object,
        run_id: int,
        *,
        finished_at: datetime,
        ok: bool,
        counts: Mapping[str, int],
        error: str | None = None,
    ) -> None:
        cur = self._tx(tx).execute(
            "UPDATE job_run SET finished_at = ?, ok = ?, counts = ?, error = ? WHERE id = ?",
            (to_db(finished_at), int(ok), json.dumps(dict(counts), sort_keys=True), error, run_id),
        )
        if cur.rowcount != 1:
            raise StoreError(f"job run {run_id} does not exist")

    def job_runs(self, job: str | None = None, *, limit: int = 20) -> list[JobRun]:
        where, params = ("job = ?", (job, limit)) if job else ("1", (limit,))
        rows = self._conn().execute(
            f"SELECT * FROM job_run WHERE {where} ORDER BY id DESC LIMIT ?",  # noqa: S608
            params,
        )
        return [_job_run(row) for row in rows]

    def get_meta(self, key: str) -> Any:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, tx: object, key: str, value: Any) -> None:
        if isinstance(value, datetime):
            value = to_db(value)
        self._tx(tx).execute(
            "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key)"
            " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (key, json.dumps(value, sort_keys=True), to_db(self.clock.now())),
        )

    def status(self, now: datetime) -> StatusSummary:
        conn = self._conn()
        escalations = {
            (State(state), level): count
            for state, level, count in conn.execute(
                "SELECT state, level, count(*) FROM escalation"
                " WHERE state NOT IN ('closed', 'archived', 'purged') GROUP BY state, level"
            )
        }
        duties_due = conn.execute(
            "SELECT count(*) FROM duty WHERE done_at IS NULL AND due_at <= ?", (to_db(now),)
        ).fetchone()[0]
        effects = dict.fromkeys(EffectState, 0)
        for state, count in conn.execute("SELECT state, count(*) FROM effect GROUP BY state"):
            effects[EffectState(state)] = count
        last_poll = self.get_meta(LAST_SUCCESSFUL_POLL)
        errors = conn.execute("SELECT * FROM job_run WHERE ok = 0 ORDER BY id DESC LIMIT 5")
        return StatusSummary(
            escalations=escalations,
            duties_due=duties_due,
            effects=effects,
            last_successful_poll=datetime.fromisoformat(last_poll) if last_poll else None,
            last_errors=tuple(_job_run(row) for row in errors),
            schema_version=self._version,
        )


# -- row mapping -------------------------------------------------------------------------
def _is_time(column: str) -> bool:
    return column.endswith("_at") or column in ("value", "signpost", "not_before")


def _times(values: dict[str, Any]) -> dict[str, Any]:
    """Parse every time column (``*_at`` and a few others) of a row dict in place."""
    for column, value in values.items():
        if _is_time(column) and isinstance(value, str):
            values[column] = _time(value)
    return values


def _escalation_values(esc: Escalation) -> tuple[Any, ...]:
    values = []
    for column in SqliteStore._ESC_COLUMNS:
        value = getattr(esc, column)
        if isinstance(value, datetime):
            value = to_db(value)
        elif isinstance(value, State):
            value = value.value
        values.append(value)
    return tuple(values)


def _escalation(row: sqlite3.Row) -> Escalation:
    values = _times(dict(row))
    values["state"] = State(values["state"])
    return Escalation(**values)


def _duplicate(esc: Escalation, exc: sqlite3.IntegrityError) -> Exception:
    text = str(exc)
    if "escalation_one_active_per_ticket" in text or "original_ticket_id" in text:
        return Duplicate(
            f"escalation {esc.key}: ticket {esc.original_ticket_id} already has an active "
            "escalation"
        )
    if "UNIQUE" in text:
        return Duplicate(f"escalation {esc.key}: {text}")
    return exc


def _effect(row: sqlite3.Row) -> Effect:
    values = _times(dict(row))
    after_kind, after_key = values.pop("after_kind"), values.pop("after_key")
    values["after"] = (after_kind, after_key) if after_kind is not None else None
    values["marker"] = Marker(values["marker"])
    values["payload"] = json.loads(values.pop("payload"))
    values["state"] = EffectState(values["state"])
    return Effect(**values)


def _job_run(row: sqlite3.Row) -> JobRun:
    values = _times(dict(row))
    values["ok"] = None if values["ok"] is None else bool(values["ok"])
    values["counts"] = json.loads(values["counts"])
    return JobRun(**values)
