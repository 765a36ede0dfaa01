"""What only the SQLite store has: its pragmas, ``PRAGMA user_version`` migrations, file
checks and the single-host lock. The engine-neutral contract is ``test_contract.py``."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from escalations.clock import FakeClock
from escalations.errors import LockHeld, StoreError
from escalations.store import SqliteStore
from escalations.store import sqlite as sqlite_module
from escalations.store.sqlite import Migration, load_migrations


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the store's file goes; the directory does not exist yet."""
    return tmp_path / "state" / "escalations.sqlite3"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[SqliteStore]:
    """A migrated ``SqliteStore`` on ``db_path`` (this module's tests are SQLite's alone)."""
    s = SqliteStore(db_path, clock)
    yield s
    s.close()


# -- opening, migrations, pragmas ----------------------------------------------------------
def test_fresh_database_is_migrated_to_the_latest_version(store: SqliteStore) -> None:
    latest = len(load_migrations())
    assert latest >= 1
    assert store.schema_version == latest
    conn = store._conn()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "escalation",
        "level_change",
        "copied_article",
        "carrier_contact",
        "duty",
        "effect",
        "sync_cursor",
        "seen_version",
        "lease",
        "job_run",
        "meta",
    } <= tables


def test_connection_pragmas_read_back(store: SqliteStore) -> None:
    conn = store._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert conn.isolation_level is None


def test_migrations_apply_in_order_from_the_recorded_version(
    db_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    SqliteStore(db_path, clock).close()
    shipped = len(load_migrations())
    extra = Migration(shipped + 1, "999_extra.sql", "CREATE TABLE extra (x INTEGER);\n-- done\n")
    monkeypatch.setattr(sqlite_module, "load_migrations", lambda: [*load_migrations(), extra])
    store = SqliteStore(db_path, clock)
    assert store.schema_version == shipped + 1
    store._conn().execute("SELECT x FROM extra")
    store.close()


def test_a_failing_migration_is_rolled_back_whole(
    db_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    SqliteStore(db_path, clock).close()
    shipped = len(load_migrations())
    broken = Migration(
        shipped + 1, "999_broken.sql", "CREATE TABLE half (x INTEGER);\nNOT SQL AT ALL;\n"
    )
    monkeypatch.setattr(sqlite_module, "load_migrations", lambda: [*load_migrations(), broken])
    with pytest.raises(StoreError, match="migration failed"):
        SqliteStore(db_path, clock)
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == shipped
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half'").fetchone()[0] == 0
    conn.close()


def test_a_database_newer_than_the_code_is_refused(db_path: Path, clock: FakeClock) -> None:
    SqliteStore(db_path, clock).close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        SqliteStore(db_path, clock)


def test_a_file_that_is_not_a_database_is_a_store_error(db_path: Path, clock: FakeClock) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        SqliteStore(db_path, clock)


def test_memory_databases_are_refused(clock: FakeClock) -> None:
    with pytest.raises(StoreError, match="file path"):
        SqliteStore(":memory:", clock)


def test_migration_files_ship_as_package_data() -> None:
    names = [m.name for m in load_migrations()]
    assert names[0] == "001_init.sql"


# -- the single-worker lock ----------------------------------------------------------------
def test_a_second_lock_holder_gets_lock_held(db_path: Path, clock: FakeClock) -> None:
    first = SqliteStore(db_path, clock)
    second = SqliteStore(db_path, clock)
    first.acquire_lock()
    first.acquire_lock()  # re-entrant for the holder
    with pytest.raises(LockHeld, match=rf"pid {os.getpid()}") as info:
        second.acquire_lock()
    assert str(db_path) in str(info.value)
    first.release_lock()
    second.acquire_lock()
    second.close()
    first.close()


def test_the_lock_names_another_process(db_path: Path, clock: FakeClock) -> None:
    SqliteStore(db_path, clock).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from escalations.store import SqliteStore;"
            "from escalations.clock import FakeClock;"
            f"s = SqliteStore({str(db_path)!r}, FakeClock()); s.acquire_lock();"
            "print('locked', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        store = SqliteStore(db_path, clock)
        with pytest.raises(LockHeld, match=rf"pid {holder.pid}\b"):
            store.acquire_lock()
        store.close()
    finally:
        holder.communicate("", timeout=30)
    store = SqliteStore(db_path, clock)
    store.acquire_lock()  # released when the holder exited
    store.close()
