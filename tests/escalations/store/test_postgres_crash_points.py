"""The crash-point tests (``tests/reliability/test_crash_points.py``: the real worker,
``escalations run --once`` in a subprocess, ``SIGKILL``ed at ``<point>:<kind>:<n>``) with the
store on PostgreSQL: the same test bodies, run here against an ``Installation`` whose
``ESCALATIONS_DATABASE_URL`` names a database of the throwaway server (``tests/pg.py``), and
the same §B4 invariants read from that database.

One thing differs, and it is the point of a shared store: a killed worker's claims and
leadership are not released by the next start (there is no single-host lock on PostgreSQL),
so the recovery pass runs past their leases (``--at``, ``RECOVER_AFTER`` later), as a
standby would take over. The matrix is the write points x the kinds that write an object
found by its marker (create, copy, the update carrying the note), plus a lost answer to the
create: the CI time stays small; the SQLite run covers every kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from escalations.clock import Clock, SystemClock
from escalations.effects.executor import DEFAULT_LEASE
from escalations.effects.helpdesk import COPY_ARTICLE, CREATE_ESCALATION, UPDATE_WITH_NOTE
from escalations.faults import POINTS
from escalations.store.postgres import PostgresStore
from sandbox import ZammadSandbox, serve
from tests.pg import PgServer
from tests.reliability import invariants
from tests.reliability import test_crash_points as crash
from tests.reliability.invariants import Report

pytestmark = pytest.mark.crash

RECOVER_AFTER = DEFAULT_LEASE + timedelta(minutes=5)
"""Past the killed worker's effect claims (and its job leases, which are shorter)."""


class PgInstallation(crash.Installation):
    """The crash tests' installation with its store in a PostgreSQL database."""

    def __init__(self, sandbox: ZammadSandbox, server: Any, state_dir: Path, url: str) -> None:
        super().__init__(sandbox, server, state_dir)
        self.url = url
        # check_invariants asks that its store "file" exists: an empty placeholder beside
        # the state directory; the store itself is the database
        self.store_path = state_dir.parent / "store-is-postgresql"
        self.store_path.touch()

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(ESCALATIONS_DATABASE_URL=self.url, **extra)

    def effects(self) -> list[Any]:
        store = PostgresStore(self.url, SystemClock())
        try:
            return store.effects()
        finally:
            store.close()

    def recover(self) -> Report:
        """``Installation.recover`` past the killed worker's leases: one clean pass, the
        invariants; then a second pass that must write nothing."""
        later = datetime.now(UTC) + RECOVER_AFTER
        self.run(at=later)
        report = self.check()
        before = len(self.writes())
        self.run(at=later + timedelta(minutes=1))
        assert self.writes()[before:] == [], "a second clean pass wrote to the helpdesk"
        self.check()
        assert self.store_path.stat().st_size == 0
        assert not list(self.state_dir.rglob("*.sqlite3*")), "a SQLite store was made"
        return report


@pytest.fixture
def pg_install(
    tmp_path: Path, pg_server: PgServer, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PgInstallation]:
    url = pg_server.url(pg_database)

    def open_store(_path: object, clock: Clock) -> PostgresStore:
        return PostgresStore(url, clock)

    def cursors(_path: Path) -> list[str]:
        store = PostgresStore(url, SystemClock())
        try:
            rows = store._read("SELECT stream, value, signpost FROM sync_cursor").fetchall()
        finally:
            store.close()
        return [
            f"inv 5: cursor {r['stream']} at {r['value']} is past its signpost {r['signpost']}"
            for r in rows
            if r["value"] > r["signpost"]
        ]

    monkeypatch.setattr(invariants, "SqliteStore", open_store)
    monkeypatch.setattr(invariants, "_cursors", cursors)
    sandbox = ZammadSandbox.demo()
    with serve(sandbox) as server:
        yield PgInstallation(sandbox, server, tmp_path / "state", url)


@pytest.mark.parametrize("kind", [CREATE_ESCALATION, COPY_ARTICLE, UPDATE_WITH_NOTE])
@pytest.mark.parametrize("point", POINTS)
def test_crash_while_escalating(pg_install: PgInstallation, point: str, kind: str) -> None:
    crash.test_crash_while_escalating(pg_install, point, kind)


def test_lost_answer_to_the_create_is_not_retried_blindly(pg_install: PgInstallation) -> None:
    crash.test_lost_answer_to_the_create_is_not_retried_blindly(pg_install, "reset")
