"""What only the PostgreSQL store has: its migrations table and the lock two starting workers
share, where the password comes from (and that it is never shown), the write lock that makes
transactions run one at a time across workers, claims from two workers at once, and a server
restart under an open store. The engine-neutral contract is ``test_contract.py``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from escalations.clock import FakeClock
from escalations.errors import StoreError
from escalations.models import EffectState
from escalations.store.postgres import PostgresStore, _db, redacted_url
from escalations.store.postgres import load_migrations as pg_migrations
from escalations.store.sqlite import load_migrations as sqlite_migrations
from tests.escalations.store.test_contract import effect_args, insert, new_escalation
from tests.pg import APP_ROLE, PgServer

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def empty_database(pg_server: PgServer) -> Iterator[str]:
    """A database with no tables yet, owned by the app role."""
    name = pg_server.new_database(migrated=False)
    yield name
    pg_server.drop_database(name)


def versions(server: PgServer, database: str) -> list[tuple[int, str]]:
    with server.admin(database) as conn:
        return [
            (row[0], row[1])
            for row in conn.execute("SELECT version, name FROM schema_migration ORDER BY version")
        ]


# -- migrations ------------------------------------------------------------------------------
def test_both_engines_have_one_list_of_steps() -> None:
    names = [m.name for m in pg_migrations()]
    assert names == [m.name for m in sqlite_migrations()]
    assert names[0] == "001_init.sql"


def test_a_fresh_database_is_migrated_to_the_latest_version(
    pg_server: PgServer, empty_database: str, clock: FakeClock
) -> None:
    store = PostgresStore(pg_server.url(empty_database), clock)
    assert store.schema_version == len(sqlite_migrations())
    store.close()
    assert versions(pg_server, empty_database) == [(m.version, m.name) for m in pg_migrations()]
    with pg_server.admin(empty_database) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        owners = {
            r[0]
            for r in conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
        }
    assert {"escalation", "effect", "lease", "seen_version", "parking", "archive"} <= tables
    assert "seen_ticket" not in tables  # dropped by 004, as on SQLite
    assert owners == {APP_ROLE}  # made by the unprivileged role, not a superuser
    with pg_server.admin() as conn:
        role = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s",
            (APP_ROLE,),
        ).fetchone()
    assert role == (False, False, False)  # docs/postgresql.md: no privilege beyond its database


def test_workers_starting_together_migrate_once(pg_server: PgServer, empty_database: str) -> None:
    url = pg_server.url(empty_database)
    start = threading.Barrier(4)
    opened: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait(timeout=30)
            store = PostgresStore(url, FakeClock())
            opened.append(store.schema_version)
            store.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert opened == [len(pg_migrations())] * 4
    assert versions(pg_server, empty_database) == [(m.version, m.name) for m in pg_migrations()]


def test_migrations_apply_in_order_from_the_recorded_version(
    pg_server: PgServer, pg_database: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = len(pg_migrations())
    extra = _db.Migration(shipped + 1, "999_extra.sql", "CREATE TABLE extra (x integer);\n")
    monkeypatch.setattr(_db, "load_migrations", lambda: [*pg_migrations(), extra])
    store = PostgresStore(pg_server.url(pg_database), clock)
    assert store.schema_version == shipped + 1
    store._read("SELECT x FROM extra")
    store.close()
    assert versions(pg_server, pg_database)[-1] == (shipped + 1, "999_extra.sql")


def test_a_failing_migration_is_rolled_back_whole(
    pg_server: PgServer, pg_database: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = len(pg_migrations())
    broken = _db.Migration(
        shipped + 1, "999_broken.sql", "CREATE TABLE half (x integer);\nNOT SQL AT ALL;\n"
    )
    monkeypatch.setattr(_db, "load_migrations", lambda: [*pg_migrations(), broken])
    with pytest.raises(StoreError, match="migration failed"):
        PostgresStore(pg_server.url(pg_database), clock)
    assert len(versions(pg_server, pg_database)) == shipped
    with pg_server.admin(pg_database) as conn:
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)


def test_a_database_newer_than_the_code_is_refused(
    pg_server: PgServer, pg_database: str, clock: FakeClock
) -> None:
    with pg_server.admin(pg_database) as conn:
        conn.execute("INSERT INTO schema_migration (version, name) VALUES (99, '099_future.sql')")
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        PostgresStore(pg_server.url(pg_database), clock)


# -- credentials -----------------------------------------------------------------------------
def test_the_url_is_shown_without_its_password() -> None:
    assert (
        redacted_url("postgresql://esc:s3cr%40t@db.example:5432/escalations?sslmode=require")
        == "postgresql://esc@db.example:5432/escalations"
    )
    assert (
        redacted_url("postgresql://db.example/escalations") == "postgresql://db.example/escalations"
    )


def test_the_password_comes_from_the_credential_when_the_url_has_none(
    pg_server: PgServer,
    pg_database: str,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = pg_server.url(pg_database, password="")
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(StoreError, match="cannot connect"):
        PostgresStore(url, clock)
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "database-password").write_text(pg_server.app_password + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    store = PostgresStore(url, clock)
    assert store.integrity_check() == ["ok"]
    store.close()


def test_the_password_comes_from_pgpassfile_when_there_is_no_other(
    pg_server: PgServer,
    pg_database: str,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passfile = tmp_path / "pgpass"
    passfile.write_text(
        f"127.0.0.1:{pg_server.port}:{pg_database}:{APP_ROLE}:{pg_server.app_password}\n"
    )
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    store = PostgresStore(pg_server.url(pg_database, password=""), clock)
    assert store.integrity_check() == ["ok"]
    store.close()


def test_a_refused_password_is_never_shown(
    pg_server: PgServer, pg_database: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wr0ng-" + "x" * 12
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreError, match="password authentication failed") as info:
        PostgresStore(pg_server.url(pg_database, password=wrong), clock)
    assert wrong not in str(info.value)
    assert wrong not in repr(info.value)
    assert info.value.__cause__ is None or wrong not in str(info.value.__cause__)
    assert f"postgresql://{APP_ROLE}@127.0.0.1:{pg_server.port}/{pg_database}" in str(info.value)
    assert wrong not in caplog.text


# -- several workers -------------------------------------------------------------------------
def test_write_transactions_of_two_workers_run_one_at_a_time(
    pg_server: PgServer, pg_database: str, clock: FakeClock
) -> None:
    url = pg_server.url(pg_database)
    first, second = PostgresStore(url, clock), PostgresStore(url, clock)
    inside = threading.Event()
    order: list[str] = []

    def other() -> None:
        inside.wait(timeout=10)
        with second.transaction():
            order.append("second began")

    thread = threading.Thread(target=other)
    thread.start()
    with first.transaction() as tx:
        insert_ok = first.insert_escalation(tx, new_escalation())
        inside.set()
        time.sleep(0.3)  # the other worker is waiting for the write lock meanwhile
        order.append("first commits")
    thread.join(timeout=10)
    assert order == ["first commits", "second began"]
    assert second.get_escalation(insert_ok.id) == insert_ok
    first.close()
    second.close()


def test_two_workers_claiming_at_once_take_each_effect_once(
    pg_server: PgServer, pg_database: str, clock: FakeClock
) -> None:
    url = pg_server.url(pg_database)
    setup = PostgresStore(url, clock)
    with setup.transaction() as tx:
        for n in range(60):
            setup.insert_effect(tx, **effect_args(f"k{n}"))  # type: ignore[arg-type]
    claimed: dict[str, list[int]] = {"w1": [], "w2": []}
    errors: list[BaseException] = []

    def work(worker: str) -> None:
        store = PostgresStore(url, clock)
        try:
            while True:
                with store.transaction() as tx:
                    effect = store.claim_next(
                        tx, worker=worker, now=T0, after_id=0,
                        lease_until=T0 + timedelta(minutes=15),
                        orphaned_before=T0 - timedelta(minutes=2),
                    )  # fmt: skip
                if effect is None:
                    return
                claimed[worker].append(effect.id)
                with store.transaction() as tx:
                    store.finish_effect(tx, effect.id, EffectState.DONE)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    every = claimed["w1"] + claimed["w2"]
    assert len(every) == 60
    assert len(set(every)) == 60  # none taken twice
    assert {e.state for e in setup.effects()} == {EffectState.DONE}
    assert {e.attempts for e in setup.effects()} == {1}
    setup.close()


def test_a_caught_failure_inside_a_transaction_commits_nothing(store_pg: PostgresStore) -> None:
    inserted: list[int] = []

    def swallow_a_failed_statement() -> None:
        with store_pg.transaction() as tx:
            inserted.append(store_pg.insert_escalation(tx, new_escalation()).id)
            with pytest.raises(psycopg.IntegrityError):
                store_pg._tx(tx).execute("INSERT INTO level_change (escalation_id) VALUES (1)")

    # PostgreSQL would turn the COMMIT into a silent ROLLBACK; the store says so instead
    with pytest.raises(StoreError, match="rolled back"):
        swallow_a_failed_statement()
    assert store_pg.get_escalation(inserted[0]) is None


def test_a_duplicate_leaves_the_transaction_usable(store_pg: PostgresStore) -> None:
    from escalations.store import Duplicate

    with store_pg.transaction() as tx:
        first = store_pg.insert_escalation(tx, new_escalation(ticket=1))
        with pytest.raises(Duplicate):
            store_pg.insert_escalation(tx, new_escalation(ticket=1, seq=2))
        second = store_pg.insert_escalation(tx, new_escalation(ticket=2))
    assert [e.id for e in store_pg.escalations_in()] == [first.id, second.id]


# -- the server goes away --------------------------------------------------------------------
def test_a_restarted_server_is_reconnected_to_and_nothing_is_lost(
    pg_server: PgServer, pg_database: str, clock: FakeClock
) -> None:
    store = PostgresStore(pg_server.url(pg_database), clock)
    esc = insert(store, new_escalation())
    pg_server.restart()
    assert store.get_escalation(esc.id) == esc  # a read: made again on a new connection
    pg_server.restart()
    again = insert(store, new_escalation(ticket=9))  # a transaction: begun on a new one
    assert [e.id for e in store.escalations_in()] == [esc.id, again.id]
    store.close()


@pytest.fixture
def store_pg(pg_server: PgServer, pg_database: str, clock: FakeClock) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_server.url(pg_database), clock)
    yield s
    s.close()


# -- choosing the store ----------------------------------------------------------------------
def test_the_scheme_of_the_database_url_chooses_the_store(
    pg_server: PgServer, pg_database: str, tmp_path: Path, clock: FakeClock
) -> None:
    from escalations.app.wiring import open_configured_store
    from escalations.errors import ConfigError
    from escalations.settings import load_settings
    from escalations.store import SqliteStore

    url = pg_server.url(pg_database)
    settings = load_settings(state_dir=tmp_path / "state", database_url=url)  # accepted
    assert settings.database_is_postgresql
    store = open_configured_store(settings, clock)
    assert isinstance(store, PostgresStore)
    store.close()
    with pytest.raises(ConfigError, match="SQLite store only so far") as info:
        _ = settings.database_path  # a SQLite file's path: a clear refusal
    assert pg_server.app_password not in str(info.value)
    sqlite = open_configured_store(load_settings(state_dir=tmp_path / "state"), clock)
    assert isinstance(sqlite, SqliteStore)
    sqlite.close()
    with pytest.raises(ConfigError, match="supports sqlite:///PATH and postgresql://"):
        _ = load_settings(state_dir=tmp_path / "state", database_url="mysql://x/y").database_path
