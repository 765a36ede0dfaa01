"""Two executors on one store, as two workers would run them (issue 9: a store ready for
several workers): the same SQLite file opened twice, the single-host file lock bypassed, each
executor with its own worker id. An effect is never applied twice, and one whose claimer died
is taken over once its lease has expired, and completed once."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from escalations.clock import FakeClock
from escalations.effects import Executor, Outbox, Registry
from escalations.models import EffectState
from escalations.store import SqliteStore
from tests.escalations.effects.fakes import KIND, CreateHandler, FakeRemote, fake_intent

EFFECTS = 120


class SharedRemote(FakeRemote):
    """One helpdesk both workers write to; each write takes a moment, so the two interleave,
    and every write is counted by the worker that made it."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.by_worker: dict[str, int] = {}

    def create(self, marker: str) -> str:
        time.sleep(0.001)
        with self.lock:
            name = threading.current_thread().name
            self.by_worker[name] = self.by_worker.get(name, 0) + 1
            return super().create(marker)

    def find(self, marker: str) -> str | None:
        with self.lock:
            return super().find(marker)


def _executor(path: Path, clock: FakeClock, remote: FakeRemote, worker: str) -> Executor:
    store = SqliteStore(path, clock)  # its own connection to the same file; no acquire_lock
    registry = Registry().add(CreateHandler(remote))
    return Executor(store, registry, Outbox(store, registry, clock), clock, worker_id=worker)


def _request(path: Path, clock: FakeClock, count: int) -> None:
    store = SqliteStore(path, clock)
    registry = Registry().add(CreateHandler())
    outbox = Outbox(store, registry, clock)
    with outbox.transaction() as tx:
        for n in range(count):
            outbox.request(tx, fake_intent(f"k{n}", title=str(n)))
    store.close()


def test_two_executors_on_one_store_never_apply_an_effect_twice(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "shared.sqlite3"
    _request(path, clock, EFFECTS)
    remote = SharedRemote()
    executors = [_executor(path, clock, remote, f"worker-{n}") for n in (1, 2)]
    errors: list[BaseException] = []

    def work(executor: Executor) -> None:
        try:
            while executor.run_pending().done:
                pass
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(e,), name=e.worker_id) for e in executors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    store = SqliteStore(path, clock)
    effects = store.effects()
    assert len(effects) == EFFECTS
    assert {e.state for e in effects} == {EffectState.DONE}
    assert sorted(remote.objects.values()) == sorted(e.marker.value for e in effects)
    assert remote.write_attempts == EFFECTS  # not one write made twice
    assert set(remote.by_worker) == {"worker-1", "worker-2"}  # both did share the work


def test_an_effect_whose_claimer_died_is_taken_over_after_its_lease_and_done_once(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "shared.sqlite3"
    _request(path, clock, 1)
    remote = FakeRemote()
    dead: dict[str, Any] = {}
    store = SqliteStore(path, clock)
    with store.transaction() as tx:  # worker 1 claims it, writes, and dies before recording
        claimed = store.claim_next(
            tx, worker="worker-1", now=clock.now(), after_id=0,
            lease_until=clock.now() + timedelta(minutes=15),
            orphaned_before=clock.now() - timedelta(minutes=2),
        )  # fmt: skip
    assert claimed is not None
    dead["remote_id"] = remote.create(claimed.marker.value)
    survivor = _executor(path, clock, remote, "worker-2")
    clock.advance(timedelta(minutes=14))
    assert survivor.run_pending().done == 0  # under worker 1's live lease: hands off
    effect = store.effect_by_key(KIND, "k0")
    assert effect is not None
    assert (effect.state, effect.claimed_by) == (EffectState.IN_FLIGHT, "worker-1")
    clock.advance(timedelta(minutes=2))  # the lease has expired
    assert survivor.run_pending().done == 1
    done = store.effect_by_key(KIND, "k0")
    assert done is not None
    assert (done.state, done.remote_id, done.attempts) == (
        EffectState.DONE, dead["remote_id"], 2,
    )  # fmt: skip
    assert remote.count(claimed.marker) == 1  # found by its marker, not written again
    assert remote.finds == 1
