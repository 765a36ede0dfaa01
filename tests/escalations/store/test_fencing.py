"""The leader lease's fencing epoch (issue 19), on both engines: a lease is granted at an
epoch that grows each time it passes to another holder, and a write transaction opened
inside ``store.fence`` checks the epoch first, so a leader paused past its lease (a fake
clock moved past it) cannot overwrite its successor's cursor or record a duty's write
twice: its commit is refused, and nothing of it is written.

Each worker has its own store object on the shared database, as two processes would."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.http import HttpClient, HttpPolicy
from connector.zammad import ZammadAdapter
from escalations.app.wiring import build
from escalations.clock import FakeClock
from escalations.mappings import load_mappings
from escalations.markers import marker_for
from escalations.settings import Settings, shipped_mappings_dir
from escalations.store.base import LeaseLost, Store
from jobs.context import JobContext, JobResult
from jobs.worker import Job, Worker
from tests.escalations.store.conftest import Engine

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LEASE = "lease:sync"
STREAM = "tickets"


def take(store: Store, holder: str, now: datetime, minutes: int = 1) -> int | None:
    with store.transaction() as tx:
        return store.acquire_lease(
            tx, LEASE, holder=holder, now=now, until=now + timedelta(minutes=minutes)
        )


def set_cursor(store: Store, at: datetime) -> None:
    with store.transaction() as tx:
        store.set_cursor(tx, STREAM, at, at)


def record_duty_write(store: Store, key: str, at: datetime) -> None:
    with store.transaction() as tx:
        store.insert_effect(
            tx, kind="note", key=key, marker=str(marker_for("note", key)), payload_json="{}",
            payload_sha256="0" * 64, payload_version=1, escalation_id=None, after=None, at=at,
        )  # fmt: skip


@pytest.fixture
def second(engine: Engine, clock: FakeClock) -> Iterator[Store]:
    """Another worker's store on the same database."""
    s = engine.open(clock)
    yield s
    s.close()


def test_the_epoch_grows_only_when_the_lease_changes_hands(store: Store) -> None:
    assert take(store, "a", T0) == 1
    assert take(store, "a", T0 + timedelta(seconds=30)) == 1  # renewed: the same epoch
    assert take(store, "b", T0 + timedelta(seconds=59)) is None  # a's, still live
    assert take(store, "b", T0 + timedelta(minutes=2)) == 2  # a's expired
    assert take(store, "a", T0 + timedelta(minutes=2)) is None
    lease = store.lease(LEASE)
    assert lease is not None
    assert (lease.holder, lease.epoch) == ("b", 2)
    with store.transaction() as tx:
        store.release_lease(tx, LEASE, holder="b")
    assert store.lease(LEASE) is None  # released: nobody holds it
    assert take(store, "b", T0 + timedelta(minutes=2)) == 3  # taken again: never back


def test_a_paused_leaders_stale_commits_are_refused(
    store: Store, second: Store, clock: FakeClock
) -> None:
    clock.set(T0)
    epoch = take(store, "a", T0)
    assert epoch == 1
    with store.fence(LEASE, holder="a", epoch=epoch):
        set_cursor(store, T0)  # the leader's own commit passes
        # a pauses; its lease lapses, and b takes over and moves the cursor on
        later = T0 + timedelta(minutes=5)
        b_epoch = take(second, "b", later)
        assert b_epoch == 2
        with second.fence(LEASE, holder="b", epoch=b_epoch):
            set_cursor(second, later)
        # a wakes and goes on where it was: every commit is refused, nothing is written
        with pytest.raises(LeaseLost, match=r"granted to a at epoch 1, now b at epoch 2"):
            set_cursor(store, T0 + timedelta(minutes=1))
        with pytest.raises(LeaseLost):
            record_duty_write(store, "duty:1", T0 + timedelta(minutes=1))
    cursor = store.get_cursor(STREAM)
    assert cursor is not None
    assert cursor.value == later  # the successor's cursor stands
    assert store.effects() == []  # the duty's write was not recorded by the stale leader
    set_cursor(store, later)  # outside the fence (the effects step) a's store still writes
    with second.fence(LEASE, holder="b", epoch=2):
        record_duty_write(second, "duty:1", later)  # the leader fires the duty, once
    assert [e.key for e in store.effects()] == ["duty:1"]


def test_a_fence_on_a_lease_never_taken_or_released_refuses(store: Store) -> None:
    with store.fence(LEASE, holder="a", epoch=1), pytest.raises(LeaseLost, match="never taken"):
        set_cursor(store, T0)
    assert take(store, "a", T0) == 1
    with store.transaction() as tx:
        store.release_lease(tx, LEASE, holder="a")
    with store.fence(LEASE, holder="a", epoch=1), pytest.raises(LeaseLost, match="released"):
        set_cursor(store, T0)
    assert store.get_cursor(STREAM) is None


# -- the worker: a job runs inside the fence of the epoch it was granted -------------------


def _worker(tmp_path: Path, store: Store, clock: FakeClock, job: Job) -> Worker:
    url = "http://127.0.0.1:9"  # no request is made: the jobs here only use the store
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, helpdesk_url=url, helpdesk_token="t", state_dir=tmp_path
    )
    client = HttpClient(url, {}, HttpPolicy(), clock)
    installation = build(
        settings,
        clock,
        adapter=ZammadAdapter(client, clock=clock),
        store=store,
        mappings=load_mappings(shipped_mappings_dir()),
    )
    return Worker(installation.ctx, [job])


def _poll(mark: datetime, pause: Callable[[], None] | None = None) -> Job:
    """A job that commits the poll cursor at ``mark`` (after ``pause``, if given)."""

    def run(ctx: JobContext) -> JobResult:
        if pause is not None:
            pause()
        with ctx.store.transaction() as tx:
            ctx.store.set_cursor(tx, STREAM, mark, mark)
        return JobResult("sync", {"tickets_changed": 1})

    return Job("sync", run, 30)


def test_a_worker_paused_past_its_lease_does_not_overwrite_its_successors_cursor(
    store: Store,
    second: Store,
    clock: FakeClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock.set(T0)
    successor_mark = T0 + timedelta(minutes=10)
    successor = _worker(tmp_path / "b", second, clock, _poll(successor_mark))

    def pause() -> None:  # a's lease lapses while it is stopped; b leads meanwhile
        clock.advance(timedelta(minutes=5))
        (taken,) = successor.run_once()
        assert taken is not None
        assert taken.counts == {"tickets_changed": 1}

    leader = _worker(tmp_path / "a", store, clock, _poll(T0, pause))
    with caplog.at_level(logging.WARNING, logger="jobs.worker"):
        (stale,) = leader.run_once()
    assert stale is None  # the job stopped at its refused commit
    cursor = store.get_cursor(STREAM)
    assert cursor is not None
    assert cursor.value == successor_mark
    (line,) = [r.getMessage() for r in caplog.records if "job.lease_lost" in r.getMessage()]
    assert f"worker={leader.worker_id}" in line
    assert f"now {successor.worker_id} at epoch 2" in line
    runs = [r for r in store.status(clock.now()).last_errors if r.job == "sync"]
    assert runs
    assert (runs[0].error or "").startswith("LeaseLost: ")
    (next_pass,) = leader.run_once()  # awake again: b leads, a stands by
    assert next_pass is not None
    assert next_pass.counts == {"not_leader": 1}
