"""The worker loop (jobs/worker.py): one wrapper per job run (STYLE.md rule 20), log once when
the helpdesk goes away and once when it is back (rule 28), and a prompt, clean stop on
SIGTERM (RELIABILITY.md §B5) — in this process and in a real one."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from connector.errors import AuthError, RedirectError, Rejected, TransientError, Unauthorized
from jobs import archive, comms, reconcile, retention, sync
from jobs.context import JobContext, JobResult
from jobs.worker import Job, Worker
from sandbox import ZammadSandbox, serve
from tests.jobs.conftest import ALICE, BOT, World

ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """A job that does what it is told, once per call: return counts or raise."""

    def __init__(self, name: str, *outcomes: dict[str, int] | BaseException) -> None:
        self.name = name
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self, ctx: JobContext) -> JobResult:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return JobResult(self.name, dict(outcome))

    def job(self, every_seconds: int = 1) -> Job:
        return Job(self.name, self, every_seconds)


def worker_with(world: World, *jobs: Recorder) -> Worker:
    return Worker(world.ctx, [j.job() for j in jobs])


def events(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]


# -- run_job ----------------------------------------------------------------------------------


def test_a_successful_run_is_recorded_with_its_counts(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobs.worker")
    job = Recorder("tidy", {"swept": 2, "kept": 0})
    result = worker_with(world, job).run_job(job.job())
    assert result == JobResult("tidy", {"swept": 2, "kept": 0})
    (run,) = world.store.job_runs("tidy")
    assert run.ok is True
    assert run.error is None
    assert dict(run.counts) == {"swept": 2, "kept": 0}
    assert run.finished_at is not None
    assert run.finished_at >= run.started_at
    assert events(caplog, "job.done") == ["job.done job=tidy swept=2"]


def test_a_failed_run_is_recorded_and_the_worker_carries_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Recorder("broken", RuntimeError("disk on fire"))
    fine = Recorder("fine", {"done": 1})
    results = worker_with(world, broken, fine).run_once()
    assert results == [None, JobResult("fine", {"done": 1})]
    (failed,) = world.store.job_runs("broken")
    assert failed.ok is False
    assert failed.error == "RuntimeError: disk on fire"
    assert dict(failed.counts) == {}
    (ok,) = world.store.job_runs("fine")
    assert ok.ok is True
    (record,) = [r for r in caplog.records if r.getMessage() == "job.failed job=broken"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None  # an unexpected fault keeps its traceback in the log
    summary = world.store.status(world.clock.now())
    assert [(r.job, r.error) for r in summary.last_errors] == [
        ("broken", "RuntimeError: disk on fire")
    ]


def test_a_permanent_helpdesk_error_is_a_failed_run_not_an_outage(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    rejected = Rejected("bad payload", status=422, method="PUT", path="/api/v1/tickets/7")
    job = Recorder("sync", rejected)
    assert worker_with(world, job).run_job(job.job()) is None
    (run,) = world.store.job_runs("sync")
    assert (run.ok, run.error) == (False, "Rejected: bad payload (PUT /api/v1/tickets/7 -> 422)")
    assert events(caplog, "helpdesk.unreachable") == []
    # the helpdesk said no: one line naming what it refused, no traceback in the journal
    (record,) = [r for r in caplog.records if r.getMessage().startswith("job.failed")]
    assert record.getMessage() == (
        "job.failed job=sync error=Rejected: bad payload (PUT /api/v1/tickets/7 -> 422)"
    )
    assert record.levelno == logging.ERROR
    assert record.exc_info is None


def test_a_redirecting_helpdesk_is_one_line_naming_the_fix(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    moved = RedirectError(
        "the helpdesk redirects to /login; set the helpdesk URL to the address it redirects to",
        status=301,
        method="GET",
        path="/api/v1/tickets/search",
    )
    job = Recorder("sync", moved, {"polled": 1})
    worker = worker_with(world, job)
    assert worker.run_job(job.job()) is None
    (record,) = [r for r in caplog.records if r.getMessage().startswith("job.failed")]
    assert "set the helpdesk URL" in record.getMessage()
    assert record.exc_info is None
    assert worker.run_job(job.job()) == JobResult("sync", {"polled": 1})  # and carries on


def test_a_refused_token_stops_the_worker(world: World, caplog: pytest.LogCaptureFixture) -> None:
    job = Recorder("sync", Unauthorized("Can't find User for Token", status=401))
    worker = worker_with(world, job)
    with pytest.raises(AuthError):
        worker.run_job(job.job())
    (run,) = world.store.job_runs("sync")
    assert run.ok is False
    assert run.error is not None
    assert run.error.startswith("Unauthorized: ")
    # said once, by the CLI that ends the worker (a refused token used to be logged 3 times)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_base_exceptions_are_not_swallowed(world: World) -> None:
    job = Recorder("sync", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        worker_with(world, job).run_job(job.job())


def test_unreachable_is_logged_once_and_recovered_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobs.worker")
    down = TransientError("connection refused", method="POST", path="/api/v1/tickets/search")
    job = Recorder("sync", down, down, down, {"tickets_changed": 1}, {}, down, {})
    worker = worker_with(world, job)
    for _ in range(5):
        worker.run_once()
    unreachable = [r for r in caplog.records if r.getMessage().startswith("helpdesk.unreachable")]
    assert len(unreachable) == 1
    assert unreachable[0].levelno == logging.WARNING
    assert "connection refused" in unreachable[0].getMessage()
    assert len(events(caplog, "helpdesk.recovered")) == 1
    assert events(caplog, "job.failed") == []  # an outage is not a fault of ours
    runs = world.store.job_runs("sync")
    assert [r.ok for r in reversed(runs)] == [False, False, False, True, True]

    worker.run_once()  # down again: a second outage is announced again, once
    worker.run_once()
    assert len(events(caplog, "helpdesk.unreachable")) == 2
    assert len(events(caplog, "helpdesk.recovered")) == 2


def test_a_job_without_helpdesk_calls_does_not_end_an_outage(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The copy job succeeding with nothing to do used to log "recovered" right after the
    poll's "unreachable", every pass (found by the review of issue 14)."""
    caplog.set_level(logging.INFO, logger="jobs.worker")
    down = TransientError("connection refused", method="POST", path="/api/v1/tickets/search")
    poll = Recorder("sync", down, down, down)
    copy = Recorder("copy", {}, {}, {})
    worker = worker_with(world, poll, copy)
    for _ in range(3):
        worker.run_once()
    assert len(events(caplog, "helpdesk.unreachable")) == 1
    assert events(caplog, "helpdesk.recovered") == []
    assert worker.helpdesk_down is not None


def test_run_once_runs_each_job_once_in_order(world: World) -> None:
    order: list[str] = []

    def job(name: str) -> Job:
        def run(ctx: JobContext) -> JobResult:
            order.append(name)
            return JobResult(name)

        return Job(name, run, 60)

    results = Worker(world.ctx, [job("a"), job("b"), job("c")]).run_once()
    assert order == ["a", "b", "c"]
    assert [r.name for r in results if r is not None] == ["a", "b", "c"]


def test_run_once_starts_nothing_once_stopping(world: World) -> None:
    job = Recorder("a", {})
    world.ctx.stop.set()
    assert worker_with(world, job).run_once() == []
    assert job.calls == 0


def test_the_default_jobs_are_the_sync_tick_comms_archive_and_retention(
    world: World,
) -> None:
    worker = world.worker
    every = world.ctx.settings.poll_interval_seconds
    assert [(j.name, j.run, j.every_seconds) for j in worker.jobs] == [
        (sync.NAME, sync.run, every),
        (sync.COPY, sync.run_copy, every),
        (comms.NAME, comms.run, world.ctx.settings.comms_interval_seconds),
        (archive.NAME, archive.run, world.ctx.settings.archive_interval_seconds),
        (retention.NAME, retention.run, world.ctx.settings.archive_interval_seconds),
        (reconcile.NAME, reconcile.run, world.ctx.settings.comms_interval_seconds),
    ]
    results = worker.run_once()
    assert [r.name for r in results if r is not None] == [
        "sync",
        "copy",
        "comms",
        "archive",
        "retention",
        "report",
    ]
    (run,) = world.store.job_runs("sync")
    assert run.ok is True


def test_the_effects_step_runs_after_each_job(world: World) -> None:
    """No job runs the executor: the worker does, after each job, and the writes' outcomes
    are part of that job's recorded counts."""
    original = world.ticket_by_title("Broadband down since Monday")
    world.flag(original)
    world.clock.advance(timedelta(seconds=30))
    poll, copy, _comms, _archive, _retention, _report = world.worker.run_once()
    assert poll is not None
    assert copy is not None
    assert poll.counts["escalations_flagged"] == 1
    assert poll.counts["effects_done"] >= 1  # the create and the writes on the original
    assert copy.counts["copies_requested"] >= 1
    assert copy.counts["effects_done"] == copy.counts["copies_requested"]
    (run,) = world.store.job_runs("copy")
    assert run.counts["effects_done"] == copy.counts["effects_done"]


# -- run_forever ------------------------------------------------------------------------------


def _stop_later(event: threading.Event, after: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(after), event.set()), daemon=True)
    thread.start()
    return thread


def test_run_forever_ticks_and_stops_promptly_when_told(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobs.worker")
    job = Recorder("tick", {})
    worker = Worker(world.ctx, [job.job(every_seconds=1)])
    stopper = _stop_later(world.ctx.stop, 1.3)
    started = time.monotonic()
    worker.run_forever()
    elapsed = time.monotonic() - started
    stopper.join()
    assert 1.2 < elapsed < 2.5, elapsed
    assert job.calls == 2  # right away, then one tick a second later
    assert events(caplog, "worker.")[0].startswith("worker.started jobs=tick/1s")
    assert events(caplog, "worker.")[-1] == "worker.stopped"


def test_run_forever_stops_promptly_with_a_long_interval(world: World) -> None:
    job = Recorder("slow", {})
    worker = Worker(world.ctx, [job.job(every_seconds=3600)])
    stopper = _stop_later(world.ctx.stop, 0.2)
    started = time.monotonic()
    worker.run_forever()
    stopper.join()
    assert time.monotonic() - started < 1.5
    assert job.calls == 1


def test_run_forever_does_not_outlive_a_refused_token(world: World) -> None:
    job = Recorder("sync", Unauthorized("refused", status=401))
    with pytest.raises(AuthError):
        Worker(world.ctx, [job.job()]).run_forever()
    assert job.calls == 1


# -- a real process: SIGTERM ------------------------------------------------------------------


def _wait_for(condition: Callable[[], bool], timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert proc.poll() is None, f"the worker exited early with {proc.returncode}"
        time.sleep(0.05)
    raise AssertionError("timed out")


def _finished_passes(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM job_run WHERE job = 'sync' AND ok = 1"
            ).fetchone()
    except sqlite3.OperationalError:  # not created or not migrated yet
        return 0
    return int(count)


@pytest.mark.timeout(60)
def test_sigterm_stops_a_real_worker_cleanly(tmp_path: Path) -> None:
    sandbox = ZammadSandbox.demo()
    (ticket_id,) = [
        i for i, t in sandbox.tickets.items() if t["title"] == "Broadband down since Monday"
    ]
    sandbox.agent_update(ticket_id, ALICE, escalation_requested=True)
    state = tmp_path / "state"
    db = state / "escalations.sqlite3"
    log_path = tmp_path / "worker.log"
    with serve(sandbox, host="127.0.0.1", port=0) as server:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ESCALATIONS_")}
        env.update(
            PYTHONPATH=str(ROOT),
            STATE_DIRECTORY=str(state),
            ESCALATIONS_HELPDESK_URL=server.url,
            ESCALATIONS_HELPDESK_TOKEN=sandbox.token_of(BOT),
            ESCALATIONS_POLL_INTERVAL_SECONDS="1",
            ESCALATIONS_HTTP_REQUESTS_PER_MINUTE="6000",
        )
        env.pop("NOTIFY_SOCKET", None)
        with log_path.open("w") as log:
            proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
                [sys.executable, "-m", "escalations", "run"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            try:
                _wait_for(lambda: _finished_passes(db) >= 1, 20, proc)
                proc.send_signal(signal.SIGTERM)
                sent = time.monotonic()
                code = proc.wait(timeout=10)
                took = time.monotonic() - sent
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    output = log_path.read_text()
    assert code == 0, output
    assert took < 10
    assert "worker.stopping signal=SIGTERM" in output
    assert output.rstrip().endswith("worker.stopped"), output[-500:]
    assert "Traceback" not in output
    assert [t for t in sandbox.tickets.values() if t.get("escalation_key")], "no escalation"
    assert (state / "escalations.sqlite3.lock").read_text() == ""  # released: no pid left


def test_a_job_runs_on_the_worker_that_holds_its_lease_and_moves_when_it_lapses(
    world: World,
) -> None:
    """Two workers on one store: the poll runs on one; the other skips it until the leader's
    lease has lapsed (it died), then takes over."""
    from escalations.app.wiring import build

    leader = world.worker
    other_installation = build(
        world.ctx.settings, world.clock, adapter=world.ctx.adapter, store=world.ctx.store,
        mappings=world.ctx.mappings,
    )  # fmt: skip
    other = other_installation.worker()
    assert leader.worker_id != other.worker_id
    (poll, *_) = leader.run_once()
    assert poll is not None
    assert "not_leader" not in poll.counts
    (skipped, *_) = other.run_once()
    assert skipped is not None
    assert skipped.counts.get("not_leader") == 1
    world.clock.advance(timedelta(minutes=2))  # the leader stopped renewing
    (taken, *_) = other.run_once()
    assert taken is not None
    assert "not_leader" not in taken.counts
    (now_skipped, *_) = leader.run_once()
    assert now_skipped is not None
    assert now_skipped.counts.get("not_leader") == 1


def test_the_leadership_lease_lasts_three_intervals_and_at_least_the_configured_minimum(
    world: World,
) -> None:
    """``ESCALATIONS_LEADER_LEASE_MIN_SECONDS``: a minute by default (the poll's three
    intervals of 30 s are 90 s, so that is what it holds); set to 5 with a 1 s poll, the lease
    is 5 s and a standby takes over 5 s after the leader stopped renewing, not a minute."""
    from escalations.app.wiring import build
    from escalations.settings import Settings

    def lease_seconds(settings: Settings) -> float:
        installation = build(
            settings, world.clock, adapter=world.ctx.adapter, store=world.ctx.store,
            mappings=world.ctx.mappings,
        )  # fmt: skip
        worker = installation.worker()
        worker.run_once()
        lease = world.ctx.store.lease("lease:sync")
        assert lease is not None
        assert lease.holder == worker.worker_id
        worker.release_leadership()
        return (lease.expires_at - world.clock.now()).total_seconds()

    default = world.ctx.settings
    assert default.leader_lease_min_seconds == 60
    assert lease_seconds(default) == 90
    assert lease_seconds(default.model_copy(update={"poll_interval_seconds": 1})) == 60
    short = default.model_copy(update={"poll_interval_seconds": 1, "leader_lease_min_seconds": 5})
    assert lease_seconds(short) == 5

    leader = build(
        short, world.clock, adapter=world.ctx.adapter, store=world.ctx.store,
        mappings=world.ctx.mappings,
    ).worker()  # fmt: skip
    standby = build(
        short, world.clock, adapter=world.ctx.adapter, store=world.ctx.store,
        mappings=world.ctx.mappings,
    ).worker()  # fmt: skip
    leader.run_once()
    world.clock.advance(timedelta(seconds=4))
    (skipped, *_) = standby.run_once()
    assert skipped is not None
    assert skipped.counts.get("not_leader") == 1
    world.clock.advance(timedelta(seconds=1.5))
    (taken, *_) = standby.run_once()
    assert taken is not None
    assert "not_leader" not in taken.counts


def test_the_leadership_lease_minimum_is_validated() -> None:
    from pydantic import ValidationError

    from escalations.settings import Settings

    for bad in (0, -1, 3601):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, leader_lease_min_seconds=bad)  # type: ignore[call-arg]
