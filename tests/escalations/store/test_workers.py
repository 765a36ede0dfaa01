"""The workers' heartbeats (``Workers``), on both engines: recorded, replaced by the next
beat of the same worker, forgotten on a clean stop or once silent too long; and the history
the nightly report reads (``worker_runs``, ``lease_grants``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from escalations.clock import FakeClock
from escalations.store.base import HISTORY_KEPT, Store, WorkerBeat

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


def test_a_workers_run_is_kept_after_its_row_is_gone(store: Store, clock: FakeClock) -> None:
    """The nightly report's history (migration 013): the first beat records the run, a clean
    stop marks it stopped, a silent worker forgotten keeps its last heartbeat."""
    since = T0 - timedelta(hours=1)
    with store.transaction() as tx:
        store.heartbeat(tx, beat("w1", T0, pid=1))
        store.heartbeat(tx, beat("w2", T0, pid=2))
    with store.transaction() as tx:
        store.heartbeat(tx, beat("w1", T0 + timedelta(minutes=5), pid=1))
        store.heartbeat(tx, beat("w2", T0 + timedelta(minutes=2), pid=2))
    clock.set(T0 + timedelta(minutes=10))
    with store.transaction() as tx:
        store.forget_worker(tx, "w1")
        store.heartbeat(tx, beat("w3", T0 + timedelta(minutes=10), pid=3))
    listed = store.worker_runs(since=since)
    assert [(r.id, r.stopped_at, r.last_heartbeat_at, r.listed) for r in listed] == [
        ("w1", T0 + timedelta(minutes=10), T0 + timedelta(minutes=5), False),
        ("w2", None, T0 + timedelta(minutes=2), True),
        ("w3", None, T0 + timedelta(minutes=10), True),
    ]
    assert (listed[1].host, listed[1].pid, listed[1].version, listed[1].started_at) == (
        "h1",
        2,
        "1.0",
        T0,
    )
    with store.transaction() as tx:
        assert store.forget_workers(tx, silent_before=T0 + timedelta(minutes=5)) == 1
    w2 = [r for r in store.worker_runs(since=since) if r.id == "w2"]
    assert [(r.stopped_at, r.last_heartbeat_at, r.listed) for r in w2] == [
        (None, T0 + timedelta(minutes=2), False)
    ]
    assert store.worker_runs(since=T0 + timedelta(minutes=11)) == [
        r for r in store.worker_runs(since=since) if r.id == "w3"
    ]
    with store.transaction() as tx:  # long after, all silent: the history goes too
        store.forget_workers(tx, silent_before=T0 + HISTORY_KEPT + timedelta(days=1))
    assert [r.id for r in store.worker_runs(since=since)] == []


def test_each_new_epoch_of_a_lease_is_kept_with_the_holder_before(store: Store) -> None:
    def take(holder: str, at: datetime) -> int | None:
        with store.transaction() as tx:
            return store.acquire_lease(
                tx, "lease:sync", holder=holder, now=at, until=at + timedelta(minutes=1)
            )

    assert take("w1", T0) == 1
    assert take("w1", T0 + timedelta(seconds=30)) == 1  # renewed: no grant
    assert take("w2", T0 + timedelta(seconds=40)) is None
    assert take("w2", T0 + timedelta(minutes=2)) == 2  # w1's lease ran out
    with store.transaction() as tx:
        store.release_lease(tx, "lease:sync", holder="w2")
    assert take("w2", T0 + timedelta(minutes=3)) == 3  # again after its release
    grants = store.lease_grants(since=T0)
    assert [(g.epoch, g.holder, g.granted_at, g.previous_holder) for g in grants] == [
        (1, "w1", T0, None),
        (2, "w2", T0 + timedelta(minutes=2), "w1"),
        (3, "w2", T0 + timedelta(minutes=3), "w2"),
    ]
    assert [g.epoch for g in store.lease_grants(since=T0 + timedelta(minutes=2))] == [2, 3]
    with store.transaction() as tx:  # pruned with the workers, but the newest grant stays
        store.forget_workers(tx, silent_before=T0 + HISTORY_KEPT + timedelta(days=1))
    assert [(g.epoch, g.previous_holder) for g in store.lease_grants(since=T0)] == [(3, None)]
