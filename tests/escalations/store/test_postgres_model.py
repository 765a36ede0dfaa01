"""The sync model (``tests/reliability/test_model.py``: customers write, agents flag and change
levels, the worker runs passes, crashes at named points, meets helpdesk faults and clock
jumps) with the store on PostgreSQL, and the same §B4 invariants
(``tests/reliability/invariants.py``) checked after every step and at rest.

The model and the invariants open their store by the name ``SqliteStore``; for this module
that name opens the machine's PostgreSQL database instead (``monkeypatch``, undone after each
test), and the cursor check reads the database's ``sync_cursor``. Nothing else differs: the
worker is wired by ``escalations.app.wiring.build`` around the store, as on SQLite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from escalations.store.postgres import PostgresStore
from tests.pg import PgServer
from tests.reliability import invariants
from tests.reliability import test_model as model

pytestmark = pytest.mark.crash


class PostgresSyncModel(model.SyncModel):
    """The sync model; the store that outlives its crashes is a PostgreSQL database."""

    server: PgServer | None = None
    current: str = ""
    """The URL of the running example's database (one example runs at a time)."""

    def __init__(self) -> None:
        assert self.server is not None, "the pg_server fixture did not run"
        self.database = self.server.new_database()
        PostgresSyncModel.current = self.server.url(self.database)
        super().__init__()
        self.store_path.touch()  # check_invariants asks that the store "file" exists

    def teardown(self) -> None:
        try:
            # the worker ran on PostgreSQL, and no SQLite file was made beside it
            assert isinstance(self.ctx.ctx.store, PostgresStore)
            assert self.store_path.stat().st_size == 0
            super().teardown()
        finally:
            assert self.server is not None
            self.server.drop_database(self.database)


def _open(_path: Any, clock: Any) -> PostgresStore:
    return PostgresStore(PostgresSyncModel.current, clock)


def _cursors(_path: Path) -> list[str]:
    store = PostgresStore(PostgresSyncModel.current, model.FakeClock())
    try:
        rows = store._read("SELECT stream, value, signpost FROM sync_cursor").fetchall()
    finally:
        store.close()
    return [
        f"inv 5: cursor {r['stream']} at {r['value']} is past its signpost {r['signpost']}"
        for r in rows
        if r["value"] > r["signpost"]
    ]


@pytest.fixture(autouse=True)
def _on_postgresql(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PostgresSyncModel, "server", pg_server)
    monkeypatch.setattr(model, "SqliteStore", _open)
    monkeypatch.setattr(invariants, "SqliteStore", _open)
    monkeypatch.setattr(invariants, "_cursors", _cursors)


TestPostgresSyncModel = PostgresSyncModel.TestCase
TestPostgresSyncModel.settings = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
