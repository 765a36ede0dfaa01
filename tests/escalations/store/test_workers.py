"""The workers' heartbeats (``Workers``), on both engines: recorded, replaced by the next
beat of the same worker, forgotten on a clean stop or once silent too long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from escalations.store.base import Store, WorkerBeat

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def beat(worker: str, at: datetime, role: str = "executor", pid: int = 10) -> WorkerBeat:
    return WorkerBeat(
        id=worker, host="h1", pid=pid, role=role, version="1.0", started_at=T0, heartbeat_at=at
    )


def test_a_heartbeat_is_recorded_and_replaced_by_the_next(store: Store) -> None:
    assert store.workers() == []
    with store.transaction() as tx:
        store.heartbeat(tx, beat("w1", T0, pid=20))
        store.heartbeat(tx, beat("w2", T0, pid=10))
    later = T0 + timedelta(seconds=30)
    with store.transaction() as tx:
        store.heartbeat(tx, beat("w1", later, role="leader", pid=20))
    assert store.workers() == [beat("w2", T0, pid=10), beat("w1", later, "leader", pid=20)]


def test_workers_are_forgotten_on_a_clean_stop_or_when_silent(store: Store) -> None:
    with store.transaction() as tx:
        store.heartbeat(tx, beat("w1", T0))
        store.heartbeat(tx, beat("w2", T0 + timedelta(hours=2)))
        store.heartbeat(tx, beat("w3", T0 + timedelta(hours=2)))
    with store.transaction() as tx:
        assert store.forget_workers(tx, silent_before=T0 + timedelta(hours=1)) == 1
        store.forget_worker(tx, "w3")
    assert [w.id for w in store.workers()] == ["w2"]
