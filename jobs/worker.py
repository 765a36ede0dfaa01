"""The worker loop, top to bottom.

- ``Worker.run_job`` runs one job, then the **effects step** (the executor makes the writes the
  job recorded; no job runs the executor itself), records the run with the job's counts and
  the writes' outcomes, logs one line, and carries on after any ``Exception``
  (``BaseException`` propagates, and a refused token stops the worker: retrying cannot help;
  it is recorded, and said once, by the CLI).
- The helpdesk being unreachable or in maintenance is logged here, once when it starts and
  once when it ends, whichever adapter said so; the jobs and the HTTP client only record it.
- **The store unreachable** (PostgreSQL restarting or failing over, ``StoreUnavailable``) is
  handled the same way, in the same place (``_Outage``): ``store.unreachable`` once when it
  goes, ``store.reachable … down for N s`` once when it answers again, and the status line
  says so meanwhile. Until then the worker waits in the job it was running, trying the store
  again with a growing pause (``STORE_WAIT_FIRST`` to ``STORE_WAIT_MAX`` seconds, on the stop
  event, so a SIGTERM still ends it at once; a watchdog ping before each pause), then runs
  that job's pass again under the same run: the transaction the outage cut was rolled back,
  and what the pass had committed before is found again (level-triggered jobs,
  look-before-write effects). A store that refuses the login (``StoreLoginRefused``) stops
  the worker, as a refused token does.
- **A conflict** (``StoreConflict``: PostgreSQL rolled a transaction back for a serialization
  failure or a deadlock) runs the pass again as well, at most ``CONFLICT_RETRIES`` times
  after a short random pause; only then is it a failed run (``job.failed``).
- **Leadership**: several workers may share one store; a job runs on the one that holds its
  lease row (``lease:<job>``), taken or renewed at each run for ``LEADER_LEASE_RUNS`` of the
  job's intervals. The others skip the job (counted as ``not_leader``) but still run the
  effects step: claims with leases keep their writes apart. The file lock of the SQLite
  store remains the single-host guard.
- **Fencing**: the lease is granted at an epoch (``acquire_lease``), and the job runs inside
  ``store.fence`` with it: every write transaction of the job (the poll's cursor and seen
  versions, the writes it records, a duty done, a report's day) first checks, under the
  store's write lock, that this worker still holds the lease at that epoch. A leader paused
  past its lease (a long GC, ``SIGSTOP``) that wakes after another took over writes nothing:
  the job stops there, logged once as ``job.lease_lost``, and the effects step runs as on any
  worker.
- **Heartbeat**: after each job run the worker records itself in the store (``heartbeat``:
  host, pid, role, version, start and this instant), for ``escalations status``; its role is
  ``leader`` while it holds any job's lease, else ``executor``. A clean stop removes the row
  (``release_leadership``); a row silent for ``FORGET_SILENT_AFTER`` is removed by the next
  heartbeat of any worker.
- ``Worker.run_once`` runs every job once, in order (``escalations run --once``).
- ``Worker.run_forever`` ticks a private ``schedule.Scheduler`` until ``stop`` is set: each job
  every ``every_seconds``. It waits with ``stop.wait``, never ``time.sleep``, so a SIGTERM is
  answered at once: the current effect finishes, no new one starts, exit 0.
- **Background**: in ``run_forever`` the jobs' context carries the worker's background thread
  (``jobs.context.Background``), for a job whose reads would hold the loop up (the nightly
  report, ``jobs.reconcile``): the job hands them over and returns, and a later pass writes
  what they built. The loop, its heartbeat and the leases go on meanwhile. A stop ends the
  thread's task at its next request; ``run_once`` has no thread (a job does its work in the
  pass).
- **Wake** (optional, ``escalations run`` with a webhook listener): when the ``wake`` event is
  set, the loop stops waiting and runs the poll at once (``sync``, then ``copy``, each with its
  effects step), then carries on ticking. Several wakes before that pass make one pass, and
  two wake passes start at least ``WAKE_MIN_SECONDS`` apart: a flood of calls cannot make the
  worker poll the helpdesk more than once a second. A wake only moves the poll earlier; what
  the poll does is decided by the helpdesk's state, as on any tick.

Jobs are level-triggered, so a missed or extra tick does no harm.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import schedule

from connector.errors import HelpdeskError, Maintenance, TransientError, Unauthorized
from connector.redaction import SECRETS
from escalations.effects.executor import Executor, new_worker_id
from escalations.errors import StoreConflict, StoreLoginRefused, StoreUnavailable
from escalations.store.base import LeaseLost, WorkerBeat
from jobs import archive, comms, reconcile, retention, sync
from jobs.context import Background, JobContext, JobResult

log = logging.getLogger(__name__)

JobFunction = Callable[[JobContext], JobResult]
LEADER_LEASE_RUNS = 3
"""A job's leadership lease lasts this many of its intervals (at least
``ESCALATIONS_LEADER_LEASE_MIN_SECONDS``, a minute by default), so a leader that died is
replaced within about that long."""
EFFECT_ROUNDS = 6
"""Sweeps of the executor per effects step: a commit may request follow-up writes that
become due in the same step (each sweep also reaches those requested during it)."""
QUIET_COUNTS = frozenset({"not_leader", "effects_deferred", "tickets_unchanged", "report_building"})
"""Counts that do not make a pass worth an INFO line (a standby, a write still settling, a
ticket seen again inside the poll overlap, the nightly report still being read): a pass
with nothing else logs ``job.done`` at DEBUG, so an idle worker is silent."""
WAKE_MIN_SECONDS = 1.0
"""Two passes started by a wake are at least this far apart (real seconds, as the waits)."""
WAKE_JOBS = (sync.NAME, sync.COPY)
"""What a wake runs: the poll, then the copy of what it found."""
FORGET_SILENT_AFTER = timedelta(days=1)
"""A worker whose last heartbeat is older than this is dropped from the store's list."""
STORE_WAIT_FIRST = 0.5
STORE_WAIT_MAX = 20.0
"""Real seconds between two tries of an unreachable store: doubling from the first to the
last: with one connection attempt (``connect_timeout``, 10 s) a try and its pause stay well
under half the watchdog interval, and the watchdog is pinged before each pause."""
CONFLICT_RETRIES = 3
CONFLICT_WAIT = 0.05
"""A pass cut by a conflict runs again up to ``CONFLICT_RETRIES`` times, after a random pause
of up to ``CONFLICT_WAIT`` × 2^n seconds (the two sides of a conflict do not meet again)."""


class Liveness(Protocol):
    """Who watches the worker (systemd, through ``escalations.app.systemd.Notifier``)."""

    def alive(self) -> None:
        """The main loop is making progress (a watchdog ping, throttled by the watcher)."""

    def status(self, line: str) -> None:
        """One line saying how the worker is doing."""


class _Unwatched:
    def alive(self) -> None:
        pass

    def status(self, line: str) -> None:
        pass


class _Outage:
    """Something the worker needs (the helpdesk, the store) that is down: said once when it
    goes (or goes another way: unreachable, then maintenance) and once when it is back."""

    def __init__(self, name: str, back: str) -> None:
        self.name = name
        self.back = back
        """The event's word for its return (``helpdesk.recovered``, ``store.reachable``)."""
        self.what: str | None = None
        self.since: datetime | None = None
        self._began = 0.0

    def down(self, what: str, now: datetime, error: object) -> None:
        if self.what != what:
            self.what, self.since, self._began = what, now, time.monotonic()
            log.warning("%s.%s since=%s error=%s", self.name, what, now.isoformat(), error)

    def up(self) -> None:
        if self.what is not None and self.since is not None:
            log.info(
                "%s.%s %s_since=%s: down for %d s",
                self.name,
                self.back,
                self.what,
                self.since.isoformat(),
                round(time.monotonic() - self._began),
            )
            self.what = self.since = None

    @property
    def state(self) -> tuple[str, str] | None:
        """``(what, since)`` while down."""
        if self.what is None or self.since is None:
            return None
        return self.what, self.since.isoformat()


@dataclass(frozen=True)
class Job:
    name: str
    run: JobFunction
    every_seconds: int


def _not_leader(job: Job) -> JobResult:
    result = JobResult(job.name)
    result.add("not_leader")
    return result


def default_jobs(ctx: JobContext) -> list[Job]:
    """The sync tick: poll, then copy; then the communication plan on its own interval
    (each followed by the effects step)."""
    every = ctx.settings.poll_interval_seconds
    return [
        Job(sync.NAME, sync.run, every),
        Job(sync.COPY, sync.run_copy, every),
        Job(comms.NAME, comms.run, ctx.settings.comms_interval_seconds),
        Job(archive.NAME, archive.run, ctx.settings.archive_interval_seconds),
        Job(retention.NAME, retention.run, ctx.settings.archive_interval_seconds),
        # the nightly report: due once a day from [report] at (docs/report.md)
        Job(reconcile.NAME, reconcile.run, ctx.settings.comms_interval_seconds),
    ]


class Worker:
    def __init__(
        self,
        ctx: JobContext,
        jobs: Sequence[Job] | None = None,
        *,
        executor: Executor | None = None,
        liveness: Liveness | None = None,
        wake: threading.Event | None = None,
    ) -> None:
        self.ctx = ctx
        self.wake = wake
        """Set by someone who knows the helpdesk changed (the webhook): poll now."""
        self._next_wake_pass = float("-inf")
        """``time.monotonic()`` before which a wake waits (``WAKE_MIN_SECONDS``)."""
        self.liveness: Liveness = liveness or _Unwatched()
        self._last_sync: datetime | None = None
        self.jobs = list(jobs) if jobs is not None else default_jobs(ctx)
        self.executor = executor
        self.worker_id = executor.worker_id if executor is not None else new_worker_id()
        self._helpdesk = _Outage("helpdesk", "recovered")
        self._store = _Outage("store", "reachable")
        self.version = ""
        """This installation's version, shown by ``escalations status`` (set by ``run``)."""
        self._started = ctx.clock.now()
        self._leading: set[str] = set()
        """The jobs whose lease this worker held at their last run."""
        self._effects_first: set[str] = {sync.NAME}
        """The jobs whose next run starts with the effects step (see ``_run_job``)."""
        self._jobs_ctx = ctx
        """What the jobs are given: ``ctx``, with the background thread in ``run_forever``."""

    def run_once(self) -> list[JobResult | None]:
        return [self.run_job(job) for job in self.jobs if not self.ctx.stop.is_set()]

    def run_forever(self) -> None:
        scheduler = schedule.Scheduler()
        for job in self.jobs:
            scheduler.every(job.every_seconds).seconds.do(self.run_job, job)
        log.info(
            "worker.started jobs=%s", ",".join(f"{j.name}/{j.every_seconds}s" for j in self.jobs)
        )
        background = Background(self.ctx.stop)
        self._jobs_ctx = dataclasses.replace(self.ctx, background=background)
        relay: threading.Event | None = None
        try:
            scheduler.run_all()  # a first pass right away, then on the ticks
            relay = self._relay_stop_to_wake()
            while not self.ctx.stop.is_set():
                self.liveness.alive()
                idle = scheduler.idle_seconds
                self._wait(min(max(idle if idle is not None else 1.0, 0.0), 1.0))
                if self.ctx.stop.is_set():
                    break
                if self._woken():
                    self._wake_pass()
                scheduler.run_pending()
        finally:
            if relay is not None:
                relay.set()
            background.close()
            self._jobs_ctx = self.ctx
        try:
            self.release_leadership()
        except StoreUnavailable as exc:
            log.warning("worker.leases_kept error=%s: they expire on their own", exc)
        log.info("worker.stopped")

    def _wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` for a stop, or a wake when one may run now. A wake that
        came too soon after the last wake pass is held, not dropped: the wait is then on
        the stop alone, until the wake may run."""
        if self.wake is None:
            self.ctx.stop.wait(timeout)
            return
        hold = self._next_wake_pass - time.monotonic()
        if hold > 0 and self.wake.is_set():
            self.ctx.stop.wait(min(timeout, hold))
        else:
            self.wake.wait(timeout)  # a stop sets it too (``_relay_stop_to_wake``)

    def _woken(self) -> bool:
        return (
            self.wake is not None
            and self.wake.is_set()
            and time.monotonic() >= self._next_wake_pass
        )

    def _wake_pass(self) -> None:
        """The poll, now. The event is cleared first, so a wake that arrives during the pass
        makes one more pass (after ``WAKE_MIN_SECONDS``) instead of being lost."""
        if self.wake is None:
            return
        self.wake.clear()
        self._next_wake_pass = time.monotonic() + WAKE_MIN_SECONDS
        log.debug("worker.woken jobs=%s", ",".join(WAKE_JOBS))
        for job in self.jobs:
            if job.name in WAKE_JOBS and not self.ctx.stop.is_set():
                self.run_job(job)

    def _relay_stop_to_wake(self) -> threading.Event | None:
        """With a wake event the loop waits on it, not on ``stop``; a thread passes a stop on
        to it, so a SIGTERM still ends the wait at once. Setting the event returned ends the
        thread (within a second) when the loop ends for another reason."""
        wake = self.wake
        if wake is None:
            return None
        done = threading.Event()

        def relay() -> None:
            while not done.is_set():
                if self.ctx.stop.wait(1.0):
                    wake.set()
                    return

        threading.Thread(target=relay, name="worker-stop-relay", daemon=True).start()
        return done

    def run_job(self, job: Job) -> JobResult | None:
        """Run one job and the effects step, record them, and carry on after any failure but
        a refused token or login. An unreachable store is waited for and a conflict retried
        (see the module docstring): the pass then runs again, as the same run."""
        run_id: int | None = None
        conflicts = 0
        while True:
            try:
                if run_id is None:
                    with self.ctx.store.transaction() as tx:
                        run_id = self.ctx.store.start_job_run(tx, job.name, self.ctx.clock.now())
                    self._store.up()  # it answered (after a down said by ``_report``)
                return self._run_job(job, run_id)
            except StoreUnavailable as exc:
                if not self._await_store(exc):
                    return None  # stopped while waiting: the run stays unfinished, as on a kill
            except StoreConflict as exc:
                conflicts += 1
                if conflicts > CONFLICT_RETRIES:
                    self._failed(job, run_id, exc)
                    return None
                pause = random.uniform(0, CONFLICT_WAIT * 2**conflicts)  # noqa: S311 - jitter
                log.info(
                    "store.conflict job=%s retry=%s/%s pause=%.2fs: %s",
                    job.name,
                    conflicts,
                    CONFLICT_RETRIES,
                    pause,
                    exc,
                )
                if self.ctx.stop.wait(pause):
                    return None

    def _failed(self, job: Job, run_id: int | None, exc: Exception) -> None:
        try:
            if run_id is not None:
                self._record(run_id, ok=False, counts={}, error=f"{type(exc).__name__}: {exc}")
        except StoreUnavailable as lost:  # said once; the next job waits for the store
            self._store.down("unreachable", self.ctx.clock.now(), lost)
        log.error("job.failed job=%s error=%s: %s", job.name, type(exc).__name__, exc)  # noqa: TRY400
        self._report()

    def _await_store(self, exc: StoreUnavailable) -> bool:
        """Wait until the store answers again, trying it with a growing pause; ``False``
        when a stop came first."""
        self._store.down("unreachable", self.ctx.clock.now(), exc)
        pause = STORE_WAIT_FIRST
        while True:
            self._report()  # alive, and the status line says the store is down
            if self.ctx.stop.wait(pause):
                return False
            try:
                self.ctx.store.count_due(now=self.ctx.clock.now())
            except StoreUnavailable:
                pause = min(pause * 2, STORE_WAIT_MAX)
                continue
            self._store.up()
            return True

    def _run_job(self, job: Job, run_id: int) -> JobResult | None:
        store = self.ctx.store
        try:
            epoch = self._leads(job)
            if epoch is None:
                self._leading.discard(job.name)
                result = _not_leader(job)
            else:
                self._leading.add(job.name)
                early = JobResult(job.name)
                if job.name in self._effects_first:
                    # the last poll held back an escalation ticket whose create was unfinished
                    # (a crash after its POST, another worker's create under way), or this is
                    # this process's first poll: the effects step first, so that a create it
                    # finishes (a dead worker's, taken over) links that ticket before this poll
                    # reads it, and an agent's change to it is applied now, not a pass later
                    self.run_effects(early)
                with store.fence(f"lease:{job.name}", holder=self.worker_id, epoch=epoch):
                    result = job.run(self._jobs_ctx)
                result.merge(early)
                if result.counts.get("tickets_deferred"):
                    self._effects_first.add(job.name)
                else:
                    self._effects_first.discard(job.name)
            self.run_effects(result)
        except LeaseLost as exc:  # paused past the lease: the successor's state stands
            self._leading.discard(job.name)
            self._record(run_id, ok=False, counts={}, error=f"{type(exc).__name__}: {exc}")
            log.warning("job.lease_lost job=%s worker=%s: %s", job.name, self.worker_id, exc)
            self._report()
            return None
        except (StoreUnavailable, StoreConflict, StoreLoginRefused):
            raise  # ``run_job`` waits or retries; a refused login stops the worker
        except Unauthorized as exc:
            # recorded, not logged: the worker stops, and the CLI says why in one line
            self._record(run_id, ok=False, counts={}, error=f"{type(exc).__name__}: {exc}")
            raise
        except TransientError as exc:
            self._record(run_id, ok=False, counts={}, error=f"{type(exc).__name__}: {exc}")
            self._helpdesk_down(exc)
            self._report()
            return None
        except HelpdeskError as exc:  # the helpdesk refused or redirected: a setup, not a bug
            self._record(run_id, ok=False, counts={}, error=f"{type(exc).__name__}: {exc}")
            log.error("job.failed job=%s error=%s: %s", job.name, type(exc).__name__, exc)  # noqa: TRY400
            return None
        except Exception as exc:
            self._record(run_id, ok=False, counts={}, error=f"{type(exc).__name__}: {exc}")
            log.exception("job.failed job=%s", job.name)
            return None
        self._record(run_id, ok=True, counts=result.counts)
        if job.name == sync.NAME:  # only a poll proves the helpdesk answers; other jobs
            self._helpdesk_up()  # may succeed without a single request
        if job.name == sync.NAME and not result.counts.get("not_leader"):
            self._last_sync = self.ctx.clock.now()
        quiet = not any(n for key, n in result.counts.items() if key not in QUIET_COUNTS)
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "job.done job=%s %s",
            job.name,
            result.summary(),
        )
        self._report()
        return result

    def _report(self) -> None:
        """Tell the watcher the worker is alive and how it is doing, in one line; record the
        heartbeat in the store (when it answers: else the line says it does not)."""
        self.liveness.alive()
        store_down = self._store.state
        if store_down is not None:
            self.liveness.status(f"store {store_down[0]} since {_hhmm(store_down[1])} · waiting")
            return
        try:
            self._heartbeat()
            due = self.ctx.store.count_due(now=self.ctx.clock.now())
        except StoreUnavailable as exc:  # said here; the next job waits for the store
            self._store.down("unreachable", self.ctx.clock.now(), exc)
            self._report()
            return
        writes = f"{due} write{'s' if due != 1 else ''} due"
        helpdesk_down = self._helpdesk.state
        if helpdesk_down is not None:
            line = f"helpdesk {helpdesk_down[0]} since {_hhmm(helpdesk_down[1])} · {writes}"
        elif self._last_sync is not None:
            line = f"polling ok · last sync {_hhmm(self._last_sync.isoformat())} · {writes}"
        else:
            line = f"starting · {writes}"
        self.liveness.status(line)

    def _leads(self, job: Job) -> int | None:
        """Take or renew this job's leadership lease: the epoch it is held at; ``None`` while
        another worker holds it."""
        now = self.ctx.clock.now()
        hold = timedelta(
            seconds=max(
                job.every_seconds * LEADER_LEASE_RUNS, self.ctx.settings.leader_lease_min_seconds
            )
        )
        with self.ctx.store.transaction() as tx:
            leads = self.ctx.store.acquire_lease(
                tx, f"lease:{job.name}", holder=self.worker_id, now=now, until=now + hold
            )
        if leads is None:
            log.debug("job.not_leader job=%s worker=%s", job.name, self.worker_id)
        return leads

    def _heartbeat(self) -> None:
        now = self.ctx.clock.now()
        beat = WorkerBeat(
            id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            role="leader" if self._leading else "executor",
            version=self.version,
            started_at=self._started,
            heartbeat_at=now,
        )
        with self.ctx.store.transaction() as tx:
            self.ctx.store.heartbeat(tx, beat)
            self.ctx.store.forget_workers(tx, silent_before=now - FORGET_SILENT_AFTER)

    def release_leadership(self) -> None:
        """Give up every job's lease (on a clean stop), so another worker takes over at once,
        and remove this worker from the store's list."""
        with self.ctx.store.transaction() as tx:
            for job in self.jobs:
                self.ctx.store.release_lease(tx, f"lease:{job.name}", holder=self.worker_id)
            self.ctx.store.forget_worker(tx, self.worker_id)
        self._leading.clear()

    def run_effects(self, result: JobResult) -> None:
        """The effects step: sweep until a sweep finishes nothing (a commit may request
        follow-ups), at most ``EFFECT_ROUNDS`` times; the outcomes go into ``result``."""
        if self.executor is None:
            return
        for _ in range(EFFECT_ROUNDS):
            self.liveness.alive()
            if self.ctx.stop.is_set():
                return
            outcome = self.executor.run_pending()
            for name in ("done", "failed", "ambiguous", "deferred"):
                result.add(f"effects_{name}", getattr(outcome, name))
            if outcome.done == 0 and outcome.failed == 0:
                return  # nothing finished, so nothing new was requested by a commit or failure

    def _record(
        self, run_id: int, *, ok: bool, counts: dict[str, int], error: str | None = None
    ) -> None:
        error = SECRETS.redact(error) if error else error
        with self.ctx.store.transaction() as tx:
            self.ctx.store.finish_job_run(
                tx, run_id, finished_at=self.ctx.clock.now(), ok=ok, counts=counts, error=error
            )

    def _helpdesk_down(self, exc: TransientError) -> None:
        """Warn once when the helpdesk becomes unreachable (or goes into maintenance), not
        on every pass."""
        what = "maintenance" if isinstance(exc, Maintenance) else "unreachable"
        self._helpdesk.down(what, self.ctx.clock.now(), exc)

    def _helpdesk_up(self) -> None:
        self._helpdesk.up()

    @property
    def helpdesk_down(self) -> tuple[str, str] | None:
        """``(unreachable|maintenance, since)`` while the helpdesk is down."""
        return self._helpdesk.state

    @property
    def store_down(self) -> tuple[str, str] | None:
        """``("unreachable", since)`` while the store does not answer."""
        return self._store.state


def _hhmm(instant: str) -> str:
    """``2026-12-07T09:03:12+00:00`` → ``09:03Z`` (the status line is short)."""
    try:
        parsed = datetime.fromisoformat(instant)
    except ValueError:
        return instant
    return parsed.astimezone(UTC).strftime("%H:%MZ")
