"""The reconciliation's checks of what the store alone knows: duties overdue or missed,
escalations parked past their confirmation day, closed ones without a hard copy, hard copies
that no longer verify (and those retention purged), writes failed or stuck, and the worker's
health. The hard copies are read from disk (``escalations.archive.directory.verify``); the
helpdesk is not asked."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from escalations.archive.directory import verify
from escalations.models import Duty, EffectState, Escalation, State
from escalations.parking import add_months
from escalations.reconcile.findings import FindingKind as K
from jobs.context import JobContext
from jobs.reconcile._found import Found
from jobs.retention import HOLDS

PERIOD = timedelta(days=1)
"""What "in the period" means: the day before the report's instant."""


def check(ctx: JobContext, found: Found, at: datetime, grace: timedelta) -> None:
    store = ctx.store
    tz = ctx.profile.tz
    by_id = {e.id: e for e in store.escalations_in()}
    overrun: set[int] = set()
    for esc in by_id.values():
        if esc.state is not State.PARKED:
            continue
        periods = [p for p in store.parking_periods(esc.id) if p.ended_at is None]
        if periods and periods[-1].pending_until.astimezone(tz).date() < at.astimezone(tz).date():
            overrun.add(esc.id)
            found.add(
                K.PARKED_PAST_CONFIRMATION,
                f"escalation:{esc.key}",
                f"parked until {periods[-1].pending_until.astimezone(tz):%Y-%m-%d %H:%M}; the "
                "confirmation call is not recorded",
                escalation=esc.key,
                ticket_id=esc.escalation_ticket_id,
                ticket_number=esc.escalation_ticket_number,
                since=periods[-1].pending_until,
            )
    _duties(ctx, found, by_id, overrun, at, grace)
    _archives(ctx, found, by_id, at, grace)
    _effects(ctx, found, by_id, at, grace)
    _health(ctx, found, at, grace)


def _suspended(ctx: JobContext, duty: Duty) -> bool:
    """A duty whose window met a parking: the plan stops while the escalation is parked."""
    if duty.slot.startswith("confirmation:"):
        return False
    start = duty.opens_at or duty.due_at
    return any(
        start < (p.ended_at or datetime.max.replace(tzinfo=start.tzinfo))
        and duty.due_at > p.resolved_at
        for p in ctx.store.parking_periods(duty.escalation_id)
    )


def _duties(
    ctx: JobContext,
    found: Found,
    by_id: dict[int, Escalation],
    overrun: set[int],
    at: datetime,
    grace: timedelta,
) -> None:
    tz = ctx.profile.tz
    for duty in ctx.store.duties(due_by=at):
        esc = by_id.get(duty.escalation_id)
        if esc is None:
            continue
        common = {
            "escalation": esc.key,
            "ticket_id": esc.escalation_ticket_id,
            "ticket_number": esc.escalation_ticket_number,
            "since": duty.due_at,
        }
        subject = f"duty:{esc.key}:{duty.kind}:{duty.slot}"
        what = duty.reason or duty.kind
        due = f"{duty.due_at.astimezone(tz):%Y-%m-%d %H:%M}"
        if duty.missed_at is not None and at - PERIOD < duty.missed_at <= at:
            found.add(
                K.DUTY_MISSED,
                subject,
                f"{what}, due {due}, was not done",
                **common,  # type: ignore[arg-type]
            )
            continue
        if duty.settled or duty.due_at > at - grace:
            continue
        in_play = esc.state is State.OPEN or (
            esc.state is State.PARKED
            and duty.slot.startswith("confirmation:")
            and esc.id not in overrun
        )
        if in_play and not _suspended(ctx, duty):
            found.add(
                K.DUTY_OVERDUE,
                subject,
                f"{what}, due {due}, is not done yet",
                **common,  # type: ignore[arg-type]
            )


def _archives(
    ctx: JobContext, found: Found, by_id: dict[int, Escalation], at: datetime, grace: timedelta
) -> None:
    archived: dict[int, int] = {}
    for copy in ctx.store.archives():
        archived[copy.escalation_id] = archived.get(copy.escalation_id, 0) + 1
        esc = by_id.get(copy.escalation_id)
        key = esc.key if esc is not None else None
        common = {
            "escalation": key,
            "ticket_id": esc.escalation_ticket_id if esc else None,
            "ticket_number": esc.escalation_ticket_number if esc else None,
        }
        if copy.purged_at is not None:
            if at - PERIOD < copy.purged_at <= at:
                found.add(
                    K.ARCHIVE_PURGED,
                    f"archive:{copy.path}",
                    f"{Path(copy.path).name} removed ({copy.purge_reason or 'retention'})",
                    since=copy.purged_at,
                    **common,  # type: ignore[arg-type]
                )
            continue
        due = add_months(copy.closed_at, ctx.profile.archive.retention_months)
        if due <= at:
            held = ctx.store.get_meta(HOLDS) or {}
            why = (
                "kept by a local legal hold"
                if key in held
                else "not purged yet (a legal-hold tag on its ticket keeps it; else the "
                "retention job is behind)"
            )
            found.add(
                K.ARCHIVE_PURGE_DUE,
                f"archive:{copy.path}",
                f"{Path(copy.path).name}: retention ended {due:%Y-%m-%d}; {why}",
                since=due,
                **common,  # type: ignore[arg-type]
            )
        problems = verify(Path(copy.path))
        if problems:
            found.add(
                K.ARCHIVE_DAMAGED,
                f"archive:{copy.path}",
                "; ".join(problems),
                since=copy.archived_at,
                **common,  # type: ignore[arg-type]
            )
    for esc in by_id.values():
        done = esc.state is State.CLOSED and esc.confirmed_at is not None
        overdue = done and esc.closed_at is not None and esc.closed_at <= at - grace
        if overdue and not archived.get(esc.id):
            found.add(
                K.CLOSED_WITHOUT_ARCHIVE,
                f"escalation:{esc.key}",
                "closed after the customer confirmed; no hard copy is filed",
                escalation=esc.key,
                ticket_id=esc.escalation_ticket_id,
                ticket_number=esc.escalation_ticket_number,
                since=esc.closed_at,
            )


def _effects(
    ctx: JobContext, found: Found, by_id: dict[int, Escalation], at: datetime, grace: timedelta
) -> None:
    for effect in ctx.store.effects(EffectState.FAILED, EffectState.PENDING, EffectState.IN_FLIGHT):
        esc = by_id.get(effect.escalation_id) if effect.escalation_id is not None else None
        common = {
            "escalation": esc.key if esc else None,
            "ticket_id": esc.escalation_ticket_id if esc else None,
            "ticket_number": esc.escalation_ticket_number if esc else None,
            "since": effect.updated_at,
        }
        if effect.state is EffectState.FAILED:
            if esc is not None and not esc.active and _gone(effect.last_error):
                continue  # the ticket was deleted and the escalation ended: listed as such
            found.add(
                K.EFFECT_FAILED,
                f"effect:{effect.id}",
                f"{effect.kind} {effect.key} failed after {effect.attempts} attempt(s): "
                f"{effect.last_error or 'no error recorded'}",
                **common,  # type: ignore[arg-type]
            )
            continue
        waiting = max(effect.updated_at, effect.not_before)
        if waiting <= at - grace:
            found.add(
                K.EFFECT_STUCK,
                f"effect:{effect.id}",
                f"{effect.kind} {effect.key} {effect.state.value.replace('_', ' ')} since "
                f"{effect.updated_at:%Y-%m-%d %H:%M} UTC ({effect.attempts} attempt(s)"
                + (f", last error: {effect.last_error}" if effect.last_error else "")
                + ")",
                **common,  # type: ignore[arg-type]
            )


def _gone(error: str | None) -> bool:
    """The write failed because its ticket no longer exists (``TicketGone``)."""
    return bool(error) and str(error).startswith("TicketGone")


def _health(ctx: JobContext, found: Found, at: datetime, grace: timedelta) -> None:
    summary = ctx.store.status(at)
    last = summary.last_successful_poll
    if last is None:
        found.add(K.WORKER_UNHEALTHY, "poll", "the worker has never completed a poll")
    elif last < at - grace:
        found.add(
            K.WORKER_UNHEALTHY,
            "poll",
            f"the last successful poll was at {last:%Y-%m-%d %H:%M} UTC",
            since=last,
        )
    failures: dict[str, list[datetime]] = {}
    for run in ctx.store.job_runs(limit=None, since=at - PERIOD):  # the period, read by time
        if run.ok is False and at - PERIOD < run.started_at <= at:
            failures.setdefault(run.job, []).append(run.started_at)
    for job, times in sorted(failures.items()):
        found.add(
            K.WORKER_UNHEALTHY,
            f"job:{job}",
            f"the {job} job failed {len(times)} time(s) in the period, last at "
            f"{max(times):%Y-%m-%d %H:%M} UTC",
            since=min(times),
        )
