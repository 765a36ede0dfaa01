"""The executor with the store on PostgreSQL: the model-based test of
``tests/escalations/effects/test_executor_model.py`` (random crashes and helpdesk faults,
every requested write exactly once) run on a PostgreSQL database, and a real ``SIGKILL`` at
each named point followed by another worker that finishes the effect once its claim's lease
has run out (on PostgreSQL nothing releases a dead worker's claim at start: the store is
shared)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from escalations.clock import FakeClock
from escalations.faults import POINTS, NoFaults
from escalations.markers import marker_for
from escalations.models import EffectState
from escalations.store.postgres import PostgresStore
from tests.escalations.effects.fakes import KIND, CreateHandler, Effects, FileRemote
from tests.escalations.effects.test_executor_model import ExecutorMachine
from tests.pg import PgServer

REPO = Path(__file__).resolve().parents[3]


class PostgresExecutorMachine(ExecutorMachine):
    """The same machine; its store is a PostgreSQL database of its own (which, like the
    SQLite file, outlives the crashes)."""

    server: PgServer | None = None

    def _start(self) -> None:
        if not hasattr(self, "database"):
            assert self.server is not None, "the pg_server fixture did not run"
            self.database = self.server.new_database()
        if self.store is not None:
            self.store.close()
        self.store = PostgresStore(self.server.url(self.database), self.clock)  # type: ignore[union-attr, assignment]
        self.fx = Effects(
            self.store,  # type: ignore[arg-type]
            [CreateHandler(self.remote)],
            self.clock,
            NoFaults(),
            max_attempts=1000,
        )

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            assert self.server is not None
            self.server.drop_database(self.database)


@pytest.fixture(autouse=True)
def _server_for_the_machine(pg_server: PgServer) -> Iterator[None]:
    PostgresExecutorMachine.server = pg_server
    yield
    PostgresExecutorMachine.server = None


TestPostgresExecutorMachine = PostgresExecutorMachine.TestCase
TestPostgresExecutorMachine.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None
)


# -- a real SIGKILL at each point --------------------------------------------------------
def run_child(url: str, remote: Path, crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ESCALATIONS_TEST_CRASH_AT"}
    if crash_at:
        env["ESCALATIONS_TEST_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "tests.escalations.store.pg_crash_child", url, str(remote)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )


@pytest.mark.crash
@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_point_then_another_worker_writes_exactly_once(
    point: str, tmp_path: Path, pg_server: PgServer, pg_database: str
) -> None:
    url, remote_file = pg_server.url(pg_database), tmp_path / "remote.txt"
    killed = run_child(url, remote_file, f"{point}:{KIND}:1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    started = time.monotonic()
    survivor = run_child(url, remote_file, None)
    assert survivor.returncode == 0, survivor.stderr
    assert time.monotonic() - started < 30

    remote = FileRemote(remote_file)
    marker = marker_for(KIND, "create:esc:1")
    assert remote.count(marker) == 1
    store = PostgresStore(url, FakeClock())
    (effect,) = store.effects()
    assert effect.state is EffectState.DONE
    assert effect.remote_id == remote.find(marker.value)
    assert store.integrity_check() == ["ok"]
    store.close()
