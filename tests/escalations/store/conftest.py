"""The store fixtures of the contract suite: ``engine`` is parametrised over SQLite and
PostgreSQL (a throwaway server, ``tests/pg.py``), and ``store`` is a migrated store on it.
A test that takes ``store`` runs on both engines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from escalations.clock import FakeClock
from escalations.store import SqliteStore
from escalations.store.base import Store


@dataclass(frozen=True)
class Engine:
    """One database engine under test: how to open (another) store on the test's database,
    and which exception its constraints raise."""

    name: str
    open: Callable[[FakeClock], Store]
    integrity_error: type[Exception]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        import sqlite3

        path = tmp_path / "state" / "escalations.sqlite3"
        return Engine("sqlite", lambda clock: SqliteStore(path, clock), sqlite3.IntegrityError)
    import psycopg

    from escalations.store.postgres import PostgresStore

    server = request.getfixturevalue("pg_server")
    url = server.url(request.getfixturevalue("pg_database"))
    return Engine("postgresql", lambda clock: PostgresStore(url, clock), psycopg.IntegrityError)


@pytest.fixture
def store(engine: Engine, clock: FakeClock) -> Iterator[Store]:
    """A migrated store on the engine's database, using the ``clock`` fixture."""
    s = engine.open(clock)
    yield s
    s.close()
