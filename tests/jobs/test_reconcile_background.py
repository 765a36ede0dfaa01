"""The nightly report read on the worker's background thread (review of issue 16, A1 and A2):
the loop polls and writes its heartbeat while the report is read, the report is written once,
complete, by the pass after its reads, under the job's fence, and it states the requests it
made itself (pinned to the sandbox's request log)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import requests.adapters
import responses

from connector.base import Capability
from connector.errors import TransientError
from connector.http import HttpClient, HttpPolicy, Interrupted, build_session
from connector.zammad import ZammadAdapter
from escalations.app.wiring import build
from escalations.clock import FakeClock
from escalations.mappings import load_mappings
from escalations.models import State
from escalations.settings import Settings, shipped_mappings_dir
from escalations.store.base import LeaseLost
from escalations.store.sqlite import SqliteStore
from jobs import reconcile, sync
from jobs.context import Background, JobContext
from jobs.worker import Job
from sandbox import ZammadSandbox, mount
from tests.jobs.conftest import BASE_URL, BOT, World

TITLES = ("Broadband down since Monday", "Leased line flapping - end users affected")
LATENCY = 0.15
"""Real seconds each request of the background thread takes (a slow helpdesk)."""
BACKGROUND = "worker-background"


class _Wire(requests.adapters.HTTPAdapter):
    """The transport: logs who sent each request (the sandbox's log does not say) and makes
    the background thread's requests slow."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.sent: list[tuple[str, str]] = []
        self.slow = threading.Event()
        self.on_background: Callable[[], None] | None = None

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        thread = threading.current_thread().name
        self.sent.append((thread, f"{request.method} {request.path_url.split('?')[0]}"))
        if thread == BACKGROUND and self.slow.is_set():
            time.sleep(LATENCY)
        if thread == BACKGROUND and self.on_background is not None:
            self.on_background()
        return super().send(request, *args, **kwargs)


@dataclasses.dataclass
class Slow:
    world: World
    wire: _Wire

    def background_requests(self) -> int:
        return sum(1 for thread, _ in self.wire.sent if thread == BACKGROUND)


@pytest.fixture
def slow(tmp_path: Path, clock: FakeClock) -> Iterator[Slow]:
    """The jobs' world (``tests.jobs.conftest.make_world``) with a transport of its own, two
    running escalations, and no report written yet today."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        sandbox = ZammadSandbox.demo(clock=clock)
        mount(sandbox, rsps, BASE_URL)
        token = sandbox.token_of(BOT)
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, helpdesk_url=BASE_URL, helpdesk_token=token, state_dir=tmp_path
        )
        policy = HttpPolicy(requests_per_minute=6000, burst=1000)
        session = build_session(policy)
        wire = _Wire()
        session.mount("https://", wire)
        client = HttpClient(
            BASE_URL, {"Authorization": f"Token token={token}"}, policy, clock, session=session
        )
        store = SqliteStore(tmp_path / "escalations.sqlite3", clock)
        installation = build(
            settings,
            clock,
            adapter=ZammadAdapter(client, clock=clock),
            store=store,
            mappings=load_mappings(shipped_mappings_dir()),
        )
        world = World(sandbox=sandbox, installation=installation, clock=clock, rsps=rsps)
        for title in TITLES:
            world.flag(world.ticket_by_title(title))
        world.sync()
        world.sync()
        world.sync()
        world.clock.advance(timedelta(minutes=15))
        world.sync()
        assert len(world.store.escalations_in(State.OPEN)) == len(TITLES)
        with world.store.transaction() as tx:  # the setup's passes wrote today's report
            world.store.set_meta(tx, reconcile.LAST_DAY, None)
        shutil.rmtree(world.ctx.settings.reports_path)
        try:
            yield Slow(world, wire)
        finally:
            world.ctx.stop.set()
            store.close()


def _report_json(world: World) -> dict[str, Any]:
    day = world.clock.now().astimezone(world.ctx.profile.tz).date().isoformat()
    path = world.ctx.settings.reports_path / day / "report.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


class _Watch:
    """The worker's liveness and its jobs' runs, with the real time of each."""

    def __init__(self) -> None:
        self.beats: list[float] = []
        self.runs: list[tuple[float, str, dict[str, int]]] = []

    def alive(self) -> None:
        pass

    def status(self, line: str) -> None:
        self.beats.append(time.monotonic())  # said after each heartbeat the store took

    def job(self, job: Job) -> Job:
        def run(ctx: JobContext) -> Any:
            result = job.run(ctx)
            self.runs.append((time.monotonic(), job.name, dict(result.counts)))
            return result

        return Job(job.name, run, job.every_seconds)


def test_in_the_loop_the_poll_and_the_heartbeat_go_on_while_the_report_is_read(
    slow: Slow,
) -> None:
    """Before: the report's reads held the loop for their whole length (about an hour at
    1 000 escalations and 60 requests a minute). Now the poll runs and the heartbeat is
    written each second meanwhile, and the report is written once, by a later pass, with
    the same findings as one read in a single pass and its own requests counted."""
    world, wire = slow.world, slow.wire
    watch = _Watch()
    jobs = [
        watch.job(Job(sync.NAME, sync.run, 1)),
        watch.job(Job(sync.COPY, sync.run_copy, 1)),
        watch.job(Job(reconcile.NAME, reconcile.run, 1)),
    ]
    worker = world.installation.worker(jobs, liveness=watch)
    wire.slow.set()
    sent_before = len(wire.sent)
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not any(c.get("reports") for _, name, c in watch.runs if name == "report"):
            assert time.monotonic() < deadline, "the report was never written"
            assert thread.is_alive()
            time.sleep(0.05)
        time.sleep(1.5)  # a few passes more: the report is not written again
    finally:
        world.ctx.stop.set()
        thread.join(10)
    assert not thread.is_alive()
    reports = [(t, c) for t, name, c in watch.runs if name == "report"]
    started = next(t for t, c in reports if c.get("report_started"))
    written = next(t for t, c in reports if c.get("reports"))
    assert sum(c.get("report_started", 0) for _, c in reports) == 1
    assert sum(c.get("reports", 0) for _, c in reports) == 1
    assert written - started > 2.0  # the reads took that long (slow helpdesk)
    polls = [t for t, name, _ in watch.runs if name == sync.NAME and started < t < written]
    assert len(polls) >= 2
    beats = [started, *(t for t in watch.beats if started < t < written), written]
    assert max(b - a for a, b in zip(beats, beats[1:], strict=False)) < 1.9
    data = _report_json(world)
    assert data["summary"]["escalations_checked"] == len(TITLES)
    assert data["summary"]["findings"] == 0
    # its own requests, all of them the background thread's (a search per mark, three per
    # running escalation), while the loop made requests of its own meanwhile
    assert data["summary"]["requests"] == slow.background_requests() > 3 * len(TITLES)
    loop_requests = [s for s in wire.sent[sent_before:] if s[0] != BACKGROUND]
    assert loop_requests
    assert len(wire.sent) == len(world.rsps.calls)  # the transport's log is the sandbox's
    wire.slow.clear()
    before = len(world.rsps.calls)
    again = reconcile.build_report(
        world.ctx, world.clock.now(), requests=lambda: len(world.rsps.calls) - before
    )
    assert [f.kind for f in again.findings] == []
    assert again.escalations_checked == data["summary"]["escalations_checked"]
    assert again.requests == data["summary"]["requests"]  # as read in a single pass


def _background(world: World) -> tuple[JobContext, Background]:
    background = Background(world.ctx.stop)
    return dataclasses.replace(world.ctx, background=background), background


def _built(background: Background) -> None:
    future = background.running(reconcile.NAME)
    assert future is not None
    future.exception(timeout=30)  # waits for the reads


def test_a_worker_that_lost_the_lead_meanwhile_writes_neither_the_files_nor_the_day(
    slow: Slow,
) -> None:
    world = slow.world
    ctx, background = _background(world)
    store = world.store
    world.clock.advance(timedelta(minutes=16))  # the setup's worker led; its lease is over
    now = world.clock.now()
    with store.transaction() as tx:
        epoch = store.acquire_lease(
            tx, "lease:report", holder="w-a", now=now, until=now + timedelta(minutes=15)
        )
    assert epoch is not None
    try:
        with store.fence("lease:report", holder="w-a", epoch=epoch):
            assert reconcile.run(ctx).counts == {"report_started": 1}
        _built(background)
        world.clock.advance(timedelta(minutes=16))  # w-a paused past its lease; w-b leads
        with store.transaction() as tx:
            taken = store.acquire_lease(
                tx, "lease:report", holder="w-b", now=world.clock.now(),
                until=world.clock.now() + timedelta(minutes=15),
            )  # fmt: skip
        assert taken is not None
        with (
            pytest.raises(LeaseLost),
            store.fence("lease:report", holder="w-a", epoch=epoch),
        ):
            reconcile.run(ctx)
    finally:
        background.close()
    assert store.get_meta(reconcile.LAST_DAY) is None
    assert not world.ctx.settings.reports_path.exists()


def test_a_failed_read_is_the_failure_of_the_pass_that_takes_it(
    slow: Slow, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = slow.world
    ctx, background = _background(world)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the articles cannot be read")

    monkeypatch.setattr(world.ctx.adapter, "list_articles", broken)
    try:
        assert reconcile.run(ctx).counts == {"report_started": 1}
        _built(background)
        with pytest.raises(reconcile.ReportReadFailed, match="the articles cannot be read"):
            reconcile.run(ctx)
        monkeypatch.undo()
        assert reconcile.run(ctx).counts == {"report_started": 1}  # the next pass tries again
        _built(background)
        assert reconcile.run(ctx).counts["reports"] == 1
    finally:
        background.close()
    assert world.store.get_meta(reconcile.LAST_DAY) is not None


def test_a_stop_ends_the_reads_at_their_next_request(slow: Slow) -> None:
    world, wire = slow.world, slow.wire
    ctx, background = _background(world)
    wire.slow.set()
    try:
        reconcile.run(ctx)
        deadline = time.monotonic() + 10
        while slow.background_requests() < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        world.ctx.stop.set()
        made = slow.background_requests()
        future = background.running(reconcile.NAME)
        assert future is not None
        assert isinstance(future.exception(timeout=5), Interrupted)
    finally:
        background.close()
    assert slow.background_requests() <= made + 1  # the one on the wire when it stopped
    assert world.store.get_meta(reconcile.LAST_DAY) is None


def test_the_nightly_report_of_a_single_pass_counts_its_requests(slow: Slow) -> None:
    """Before: the worker's report said ``"requests": null`` ("not counted")."""
    world = slow.world
    before = len(world.rsps.calls)
    worker = world.installation.worker([Job(reconcile.NAME, reconcile.run, 300)])
    (result,) = worker.run_once()
    assert result is not None
    assert result.counts["reports"] == 1
    made = len(world.rsps.calls) - before
    assert _report_json(world)["summary"]["requests"] == made > 3 * len(TITLES)


def test_an_adapter_whose_reads_cannot_be_shared_builds_the_report_in_the_pass(
    slow: Slow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An adapter without ``Capability.SHARED_READS`` (osTicket: one database connection for
    the poll and the report) gets no background build, even in the loop."""
    world = slow.world
    ctx, background = _background(world)
    without = world.ctx.adapter.capabilities - {Capability.SHARED_READS}
    monkeypatch.setattr(world.ctx.adapter, "capabilities", without)
    try:
        counts = reconcile.run(ctx).counts
        assert counts["reports"] == 1
        assert "report_started" not in counts
        assert background.running(reconcile.NAME) is None
    finally:
        background.close()
    assert slow.background_requests() == 0
    assert _report_json(world)["summary"]["requests"] > 3 * len(TITLES)


def test_a_reading_that_runs_past_midnight_still_writes_its_days_report(slow: Slow) -> None:
    """Before: the built report was dropped because its day was over, and that day had none
    (review of f3bf6b5)."""
    world = slow.world
    tz = world.ctx.profile.tz
    start = world.clock.now().astimezone(tz).replace(hour=23, minute=0, second=0, microsecond=0)
    world.clock.set(start)
    ctx, background = _background(world)
    try:
        assert reconcile.run(ctx).counts == {"report_started": 1}
        _built(background)
        world.clock.set(start + timedelta(hours=2, minutes=15))  # 01:15, before [report] at
        assert reconcile.run(ctx).counts["reports"] == 1
    finally:
        background.close()
    day = start.date().isoformat()
    assert world.store.get_meta(reconcile.LAST_DAY) == day
    assert (world.ctx.settings.reports_path / day / "report.json").is_file()


def test_a_helpdesk_outage_during_the_reading_is_a_failed_report_not_an_outage_now(
    slow: Slow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timeout the background reading met is the report job's failure: the worker's loop,
    whose own requests are answered, is not put into its helpdesk-unreachable state."""
    world = slow.world
    ctx, background = _background(world)

    def timed_out(*args: Any, **kwargs: Any) -> Any:
        raise TransientError("the helpdesk timed out")

    monkeypatch.setattr(world.ctx.adapter, "list_articles", timed_out)
    try:
        reconcile.run(ctx)
        _built(background)
        with pytest.raises(reconcile.ReportReadFailed, match="TransientError") as failed:
            reconcile.run(ctx)
    finally:
        background.close()
    assert not isinstance(failed.value, TransientError)
    assert isinstance(failed.value.__cause__, TransientError)


def test_the_files_are_written_with_no_store_transaction_open(
    slow: Slow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the files were written inside the transaction that records the day, holding
    the store's write lock meanwhile (on PostgreSQL every other worker's writes wait on a
    slow reports mount). A transaction opened while they are written would nest, and the
    store refuses that; now it opens, and the day is still recorded after the files."""
    world = slow.world
    written = reconcile.outputs.write
    seen: list[str | None] = []

    def write(report: Any, root: Path) -> None:
        with world.store.transaction():  # raises StoreError inside another transaction
            pass
        seen.append(world.store.get_meta(reconcile.LAST_DAY))
        written(report, root)

    monkeypatch.setattr(reconcile.outputs, "write", write)
    worker = world.installation.worker([Job(reconcile.NAME, reconcile.run, 300)])
    (result,) = worker.run_once()
    assert result is not None
    assert result.counts["reports"] == 1
    day = world.clock.now().astimezone(world.ctx.profile.tz).date().isoformat()
    assert seen == [None]
    assert world.store.get_meta(reconcile.LAST_DAY) == day
    assert _report_json(world)["summary"]["findings"] == result.counts["findings"]


def test_a_long_reading_says_so_in_the_log_after_three_hours_then_hourly(
    slow: Slow, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a reading that took hours was invisible (the pass said ``report_building``,
    at debug level, and nothing else). Each of its requests takes 20 minutes here."""
    world = slow.world
    ctx, background = _background(world)
    slow.wire.on_background = lambda: world.clock.advance(timedelta(minutes=20))
    caplog.set_level(logging.WARNING, logger="jobs.reconcile")
    try:
        assert reconcile.run(ctx).counts == {"report_started": 1}
        _built(background)
        assert reconcile.run(ctx).counts["reports"] == 1
    finally:
        background.close()
    made = slow.background_requests()
    assert made > 12
    # the watch runs before request k (from 0), at k x 20 minutes: 3 h at k = 9, then each hour
    expected = [k for k in range(made) if k >= 9 and (k - 9) % 3 == 0]
    slow_lines = [r.getMessage() for r in caplog.records if "report.slow" in r.getMessage()]
    assert len(slow_lines) == len(expected)
    assert slow_lines[0].startswith("report.slow day=")
    assert " reading_for=3.0h requests=9:" in slow_lines[0]
    assert " reading_for=4.0h requests=12:" in slow_lines[1]
