"""The executor under random crashes and helpdesk faults (Hypothesis stateful), and under a real
SIGKILL at each named point: every requested write happens exactly once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from connector.errors import RateLimited, Rejected, TransientError
from escalations.clock import FakeClock
from escalations.faults import POINTS, NoFaults, RaiseAt, SimulatedCrash
from escalations.markers import marker_for
from escalations.models import EffectState
from escalations.store import SqliteStore
from tests.escalations.effects.fakes import (
    AMBIGUOUS_APPLIED,
    AMBIGUOUS_LOST,
    KIND,
    CreateHandler,
    Effects,
    FakeRemote,
    FileRemote,
    fake_intent,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
REMOTE_FAULTS = [
    AMBIGUOUS_APPLIED,
    AMBIGUOUS_LOST,
    "transient",
    "rate_limited",
    "rejected",
]


def make_fault(name: str) -> Any:
    if name == "transient":
        return TransientError("503", status=503)
    if name == "rate_limited":
        return RateLimited("429", status=429, retry_after=3)
    if name == "rejected":
        return Rejected("422", status=422)
    return name


class ExecutorMachine(RuleBasedStateMachine):
    """The helpdesk (``remote``) and the SQLite file outlive crashes; nothing else does."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="effects-model-"))
        self.clock = FakeClock(T0)
        self.remote = FakeRemote()
        self.requested: set[str] = set()
        self.crashed = False
        self.store: SqliteStore | None = None
        self._start()

    def _start(self) -> None:
        if self.store is not None:
            self.store.close()
        self.store = SqliteStore(self.dir / "escalations.sqlite3", self.clock)
        self.store.acquire_lock()  # a (re)started worker
        self.fx = Effects(
            self.store,
            [CreateHandler(self.remote)],
            self.clock,
            NoFaults(),
            max_attempts=1000,
        )

    # -- rules ---------------------------------------------------------------------------
    @precondition(lambda self: not self.crashed)
    @rule(n=st.integers(0, 5))
    def request(self, n: int) -> None:
        key = f"create:esc:{n}"
        try:
            with self.fx.transaction() as tx:
                self.fx.request(tx, fake_intent(key, str(n)))
        except SimulatedCrash:
            self.crashed = True  # at intent.committed: after the commit
        self.requested.add(key)

    @precondition(lambda self: not self.crashed)
    @rule(limit=st.none() | st.integers(1, 3))
    def run(self, limit: int | None) -> None:
        try:
            self.fx.run_pending(limit)
        except SimulatedCrash:
            self.crashed = True

    @precondition(lambda self: not self.crashed)
    @rule(point=st.sampled_from(POINTS), nth=st.integers(1, 3))
    def crash_at(self, point: str, nth: int) -> None:
        self.fx.faults = RaiseAt(point, kind=KIND, nth=nth)

    @precondition(lambda self: self.crashed)
    @rule()
    def recover(self) -> None:
        self._start()
        self.crashed = False

    @rule(fault=st.sampled_from(REMOTE_FAULTS))
    def helpdesk_fault(self, fault: str) -> None:
        self.remote.planned.append(make_fault(fault))

    @rule(seconds=st.integers(0, 3600))
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def never_a_duplicate(self) -> None:
        markers = list(self.remote.objects.values())
        assert len(markers) == len(set(markers)), f"duplicate write: {markers}"

    @invariant()
    def no_intent_lost_and_done_means_written(self) -> None:
        assert self.store is not None
        effects = {e.key: e for e in self.store.effects()}
        assert self.requested <= set(effects)
        for effect in effects.values():
            if effect.state is EffectState.DONE:
                assert self.remote.objects.get(effect.remote_id or "") == effect.marker.value

    def teardown(self) -> None:
        try:
            self._quiesce()
        finally:
            if self.store is not None:
                self.store.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _quiesce(self) -> None:
        """One clean recovery, no more faults: every intent ends done (or failed by a
        rejection, with nothing written), each written exactly once."""
        self._start()
        self.remote.planned.clear()
        assert self.store is not None
        for _ in range(3):
            self.clock.advance(timedelta(days=1))
            self.fx.run_pending()
        states = {e.key: e.state for e in self.store.effects()}
        assert not {EffectState.PENDING, EffectState.IN_FLIGHT} & set(states.values()), states
        for key in self.requested:
            count = self.remote.count(marker_for(KIND, key))
            assert count == (1 if states[key] is EffectState.DONE else 0), (key, states[key])
        assert self.store.integrity_check() == ["ok"]


TestExecutorMachine = ExecutorMachine.TestCase
TestExecutorMachine.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)


# -- a real SIGKILL at each point --------------------------------------------------------
REPO = Path(__file__).resolve().parents[3]


def run_child(db: Path, remote: Path, crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ESCALATIONS_TEST_CRASH_AT"}
    if crash_at:
        env["ESCALATIONS_TEST_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "tests.escalations.effects.crash_child", str(db), str(remote)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )


@pytest.mark.crash
@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_point_then_restart_writes_exactly_once(point: str, tmp_path: Path) -> None:
    db, remote_file = tmp_path / "escalations.sqlite3", tmp_path / "remote.txt"
    killed = run_child(db, remote_file, f"{point}:{KIND}:1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    restarted = run_child(db, remote_file, None)
    assert restarted.returncode == 0, restarted.stderr

    remote = FileRemote(remote_file)
    marker = marker_for(KIND, "create:esc:1")
    assert remote.count(marker) == 1
    store = SqliteStore(db, FakeClock())
    (effect,) = store.effects()
    assert effect.state is EffectState.DONE
    assert effect.remote_id == remote.find(marker.value)
    assert store.integrity_check() == ["ok"]
    store.close()
