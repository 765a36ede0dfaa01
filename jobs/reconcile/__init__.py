"""The nightly reconciliation (DESIGN.md rule 9, issue 16): the helpdesk against the store.

``build_report`` reads the helpdesk in bulk (``jobs.reconcile.snapshot``), checks each
escalation's tickets and copies (``jobs.reconcile.tickets``) and what the store alone knows —
duties, parking, hard copies, writes, the worker's health (``jobs.reconcile.records``), the
workers that went silent, restarted or took over the lead (``jobs.reconcile.workers``) — and
returns a ``Report`` of typed findings. It reads only: nothing is written to the helpdesk or
the store. ``run`` is the job: the report for the local day of the clock's instant, written
to ``ESCALATIONS_REPORTS_DIR/<date>/`` (``escalations.reconcile.outputs``), once a day from
``[report] at`` (``mappings/process.toml``), in the worker loop. ``build_and_repair`` is
``escalations report --repair``: the report, then the safe repairs of its findings through
the effects executor (``jobs.reconcile.repair``); the nightly job never repairs.

**The nightly job reads on the worker's background thread** (``jobs.context.Background``),
not in the loop: at the default budget (60 requests a minute) the reads of 1 000 open
escalations take about an hour, and a loop held that long neither polls, copies, runs the
communication plan nor writes its heartbeat (``status`` and the other workers would take it
for silent; on PostgreSQL another worker would take its leases). The pass that finds the
report due hands its build to the thread and returns; the thread's requests take at most
``REPORT_SHARE`` of the request budget (``connector.http.ThreadShare``: a bucket of their
own before the client's, so the poll and the copies keep the rest), are counted (the
report's ``requests``: its own requests only, not the loop's meanwhile), make no watchdog
ping and stop at the next request once the worker stops. Its store reads are single
statements on the thread's own connection: no transaction is held. A later pass takes the
built report and writes it on the loop's thread, under the job's lease fence, in one short
transaction after the reads (the files, then ``LAST_DAY``): a worker that lost the lead
meanwhile writes nothing, and a build that failed is that pass's failure (``job.failed``,
``ReportReadFailed``).
A thread rather than a report cut into slices per pass: the reads run through the snapshot,
the ticket checks and the people lookups, and cutting them would mean resumable state in
each; a thread keeps them as they are, and the store and the HTTP client are already
thread-safe (a connection per thread; the token bucket's lock). Not on osTicket, whose
database reads share one PyMySQL connection with the loop's poll: there the report is
still built in the pass (an adapter without ``Capability.SHARED_READS``). A single pass
(``run --once``, no background thread) also builds and writes it in the pass.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from connector.base import Capability
from connector.http import ThreadShare
from escalations.bindings.marks import marks_for
from escalations.effects.executor import Executor
from escalations.effects.helpdesk import AddNote, NotePayload
from escalations.errors import ConfigError, EscalationsError
from escalations.models import ACTIVE_STATES
from escalations.people import People
from escalations.reconcile import note, outputs
from escalations.reconcile.findings import DayDuties, FindingKind, Report
from jobs.context import JobContext, JobResult
from jobs.reconcile import customers, records, repair, snapshot, workers
from jobs.reconcile._found import Found
from jobs.reconcile.backoff import held_back
from jobs.reconcile.tickets import Checks

log = logging.getLogger(__name__)

NAME = "report"
CHART_DAYS = 14
REPORT_SHARE = 0.5
"""The share of the request budget the nightly report's reads may take while the worker's
loop goes on (``connector.http.ThreadShare``)."""
SCHEMA_VERSION = outputs.SCHEMA_VERSION


def grace(ctx: JobContext) -> timedelta:
    """How long the worker may take to act on a change before a difference counts: the
    settle time of a write of unknown outcome, the longest timed job's interval and three
    polls."""
    s = ctx.settings
    longest = max(s.comms_interval_seconds, s.archive_interval_seconds)
    return timedelta(seconds=s.write_settle_seconds + longest + 3 * s.poll_interval_seconds)


def build_report(
    ctx: JobContext,
    at: datetime,
    *,
    requests: Callable[[], int] | None = None,
    previous: Mapping[FindingKind, int] | None = None,
) -> Report:
    """The reconciliation as of ``at``.

    Args:
        ctx: the wired job context (adapter, binding, store, mappings).
        at: the instant the report is for (aware).
        requests: how many helpdesk requests have been made so far; the report states the
            difference it made. ``None``: not counted.
        previous: counts of the previous report, for the summary.
    """
    return _build(ctx, at, requests=requests, previous=previous)[0]


def build_and_repair(
    ctx: JobContext,
    executor: Executor,
    at: datetime,
    *,
    dry_run: bool,
    requests: Callable[[], int] | None = None,
    previous: Mapping[FindingKind, int] | None = None,
) -> Report:
    """The reconciliation as of ``at`` (``build_report``), then the safe repairs of its
    findings through the outbox and ``executor`` (``jobs.reconcile.repair``); ``dry_run``:
    only planned, nothing written. The report's findings are those it found before
    repairing; ``Report.repairs`` says what became of each repair. ``requests`` counts the
    reading only."""
    read_at = ctx.clock.now()
    report, snap = _build(ctx, at, requests=requests, previous=previous)
    repairs = repair.repair(ctx, executor, report, snap, read_at=read_at, dry_run=dry_run)
    return dataclasses.replace(report, repairs=repairs)


def _build(
    ctx: JobContext,
    at: datetime,
    *,
    requests: Callable[[], int] | None,
    previous: Mapping[FindingKind, int] | None,
) -> tuple[Report, snapshot.Snapshot]:
    before = requests() if requests is not None else 0
    marks = marks_for(ctx.mappings, ctx.adapter.capabilities)
    snap = snapshot.read(ctx.adapter, marks)
    found = Found()
    if marks.escalation_tickets is None:
        found.skipped("escalation tickets the worker does not know: no search finds them")
    wait = grace(ctx)
    people = People(ctx.adapter, ctx.binding, ctx.profile)
    checks = Checks(ctx, marks, snap, found, at, wait, people)
    checked = checks.run()
    customers.check(checks)
    records.check(ctx, found, at, wait)
    workers.check(ctx, found, at, records.PERIOD)
    tz = ctx.profile.tz
    day = at.astimezone(tz).date()
    report = Report(
        schema_version=SCHEMA_VERSION,
        generated_at=at,
        day=day,
        time_zone=tz.key,
        helpdesk=ctx.adapter.name,
        helpdesk_url=ctx.settings.helpdesk_url,
        ticket_link=marks.ticket_link,
        findings=found.findings(),
        open_by_level=_open_by_level(ctx),
        duties_by_day=_duties_by_day(ctx, day),
        requests=(requests() - before) if requests is not None else None,
        escalations_checked=checked,
        tickets_read=snap.tickets_read,
        previous_counts=previous,
        not_checked=tuple(found.not_checked),
        workers=workers.seen(ctx, at, records.PERIOD),
    )
    log.info(
        "report.built day=%s findings=%d drift=%d requests=%s",
        day,
        len(report.findings),
        report.drift,
        report.requests,
    )
    return report, snap


def _open_by_level(ctx: JobContext) -> dict[int, int]:
    counts = Counter(e.level for e in ctx.store.escalations_in(*ACTIVE_STATES))
    return {level: counts.get(level, 0) for level in range(1, ctx.profile.max_level + 1)}


def _duties_by_day(ctx: JobContext, day: date) -> tuple[DayDuties, ...]:
    tz = ctx.profile.tz
    first = day - timedelta(days=CHART_DAYS - 1)
    done: Counter[date] = Counter()
    missed: Counter[date] = Counter()
    for duty in ctx.store.duties():
        due = duty.due_at.astimezone(tz).date()
        if not first <= due <= day:
            continue
        if duty.done_at is not None:
            done[due] += 1
        elif duty.missed_at is not None:
            missed[due] += 1
    return tuple(
        DayDuties(day=d, done=done[d], missed=missed[d])
        for d in (first + timedelta(days=n) for n in range(CHART_DAYS))
    )


LAST_DAY = "report.last_day"
"""Meta key: the local day (ISO date) of the last nightly report written."""


def write_report(
    ctx: JobContext, at: datetime, *, requests: Callable[[], int] | None = None
) -> Report:
    """Build the report as of ``at`` and write its files for its local day."""
    report = _built(ctx, at, requests)
    outputs.write(report, ctx.settings.reports_path)
    return report


def _built(ctx: JobContext, at: datetime, requests: Callable[[], int] | None) -> Report:
    day = at.astimezone(ctx.profile.tz).date()
    previous = outputs.previous_counts(ctx.settings.reports_path, day)
    return build_report(ctx, at, requests=requests, previous=previous)


@dataclass(frozen=True)
class _Nightly:
    """A nightly report built on the background thread, for the pass that writes it."""

    day: str
    report: Report


def run(ctx: JobContext) -> JobResult:
    """The nightly report, level-triggered: due from ``[report] at`` local time, once per
    local day (``LAST_DAY``); a worker down at that time writes it when it is back. In the
    worker's loop its reads run on the background thread (see the module docstring): this
    pass starts them, or writes what they built, or says they are still under way."""
    result = JobResult(NAME)
    shared = Capability.SHARED_READS in ctx.adapter.capabilities
    background = ctx.background if shared else None
    if background is not None:
        finished = background.outcome(NAME)
        if finished is not None:
            _finish(ctx, finished, result)
        elif background.running(NAME) is not None:
            result.add("report_building")
            return result
    schedule = ctx.profile.report
    at = ctx.clock.now()
    local = at.astimezone(ctx.profile.tz)
    if not schedule.nightly or local.time() < schedule.at:
        return result
    try:
        marks_for(ctx.mappings, ctx.adapter.capabilities)
    except ConfigError:
        result.add("not_supported")  # this helpdesk has no report (docs/report.md)
        return result
    day = local.date().isoformat()
    if ctx.store.get_meta(LAST_DAY) == day or held_back(ctx, at):  # (backoff.py)
        return result
    if background is None:  # a single pass, or a helpdesk read from the loop only
        share = ThreadShare(progress=True)  # counts this thread's requests, nothing more
        with share.on_this_thread():
            report = _built(ctx, at, lambda: share.answered)
        _write(ctx, report, day, result)
        return result
    share = ThreadShare(
        share=REPORT_SHARE, stopping=background.stopping, watch=_still_reading(ctx, day)
    )

    def build() -> _Nightly:
        with share.on_this_thread():
            return _Nightly(day, _built(ctx, at, lambda: share.answered))

    background.submit(NAME, build)
    log.info("report.started day=%s share=%s", day, REPORT_SHARE)
    result.add("report_started")
    return result


SLOW_READING = timedelta(hours=3)
"""A background reading still under way this long after it started says so in the log
(``report.slow``, a warning), and again each ``SLOW_READING_REPEAT`` after: at the default
budget 1 000 escalations take about 2¼ hours, so a reading past 3 hours is a bigger
installation than the budget suits, or a helpdesk answering slowly."""
SLOW_READING_REPEAT = timedelta(hours=1)


def _still_reading(ctx: JobContext, day: str) -> Callable[[int], None]:
    """The background reading's watch (``ThreadShare.watch``, asked before each request
    on that thread): the ``report.slow`` warnings of a reading that takes long."""
    started = ctx.clock.monotonic()
    due = started + SLOW_READING.total_seconds()

    def watch(answered: int) -> None:
        nonlocal due
        now = ctx.clock.monotonic()
        if now < due:
            return
        due = now + SLOW_READING_REPEAT.total_seconds()
        log.warning(
            "report.slow day=%s reading_for=%.1fh requests=%d: the nightly report is still "
            "being read, at %s of the request budget (ESCALATIONS_HTTP_REQUESTS_PER_MINUTE); "
            "the loop goes on meanwhile",
            day,
            (now - started) / 3600,
            answered,
            REPORT_SHARE,
        )

    return watch


class ReportReadFailed(EscalationsError):
    """The nightly report's reads on the background thread failed. Raised by the pass that
    takes the outcome, as that job's failure (``job.failed``): an outage or a refusal seen by
    a read that may have ended an hour earlier is not the helpdesk's or the store's state
    now (the loop's own requests tell that), so it does not reach the worker as one."""


def _finish(ctx: JobContext, finished: Future[Any], result: JobResult) -> None:
    """Write the report the background thread built (its failure is this pass's), unless
    that day's report, or a later day's, is written meanwhile (by another worker). A reading
    that ran past local midnight still writes its day's report: the next day's comes due at
    its own ``[report] at``."""
    try:
        nightly: _Nightly = finished.result()
    except Exception as exc:
        raise ReportReadFailed(f"the report's reads failed: {type(exc).__name__}: {exc}") from exc
    written = ctx.store.get_meta(LAST_DAY)
    if written is not None and written >= nightly.day:  # ISO dates: in order as strings
        log.info("report.dropped day=%s: the report of %s is written", nightly.day, written)
        result.add("reports_dropped")
        return
    _write(ctx, nightly.report, nightly.day, result)


def _write(ctx: JobContext, report: Report, day: str, result: JobResult) -> None:
    """After the reads, under the job's fence: an empty transaction checks the lead is still
    this worker's (one that lost it writes neither the files nor the day), then the files
    are written with no transaction open, then a second short transaction records
    ``LAST_DAY``. Written inside the transaction, a slow reports mount held the store's write
    lock, which on PostgreSQL stalls every other worker's writes. If the lead is lost between
    the two, the files are written and the day is not: the new leader writes that day's
    files again, whole (``outputs.write`` replaces each file at once)."""
    with ctx.store.transaction():
        pass  # the fence's check, and nothing else
    written = outputs.write(report, ctx.settings.reports_path)
    ticket_id = ctx.profile.report.note_on_ticket
    with ctx.outbox.transaction() as tx:
        ctx.store.set_meta(tx, LAST_DAY, day)
        if ticket_id is not None:
            # the summary note, exactly once per day (its key), made by the effects step
            payload = NotePayload(
                ticket_id=ticket_id,
                html=note.summary_html(report, written),
                subject=note.subject(report),
            )
            ctx.outbox.request(tx, AddNote.intent(AddNote.key("report", "nightly", day), payload))
            result.add("report_notes_requested")
    result.add("reports", 1)
    result.add("findings", len(report.findings))
    result.add("drift", report.drift)
