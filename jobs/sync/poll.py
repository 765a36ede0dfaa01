"""The ``sync`` job: poll the helpdesk for changed tickets and record what each change means
(DESIGN.md rules 1–5).

For each new version of a changed ticket, the reads it needs are made first, then *one* local
transaction records what must happen (escalation rows, level changes, carrier contacts, scan
requests and write intents, through ``escalations.lifecycle``), marks the version seen and
moves the cursor. The worker's effects step then makes the writes; the ``copy`` job
(``copying.py``) turns scan requests into copies.

- an escalation ticket → a level an agent set (``levels``), the carrier log (``carrier``);
- an original ticket → a flag (``flagging``), a scan for new customer messages;
- an original merged into another ticket → a scan of that target (``merging``);
- any ticket → a scan, if it is a new ticket of a customer with an open escalation, or a
  ticket an open escalation reads besides its original (a merge target).

Level-triggered: a pass works out from the store and the helpdesk what is due now; running it
twice in a row records nothing new.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from connector.base import Ticket
from connector.errors import Forbidden, HelpdeskError, TransientError, Unauthorized
from escalations.effects.helpdesk import CreateEscalation
from escalations.errors import StoreConflict, StoreUnavailable
from escalations.models import TERMINAL_STATES, EffectState
from escalations.store.base import LAST_SUCCESSFUL_POLL, LeaseLost
from jobs import parking
from jobs.context import JobContext, JobResult
from jobs.sync import carrier, copying, flagging, levels, merging, reach, rfo
from jobs.sync._pass import Plan, SyncPass
from jobs.sync.cursor import PollCursor

log = logging.getLogger(__name__)

NAME = "sync"
INITIAL_LOOKBACK = timedelta(days=30)
"""How far back the very first poll looks for flagged tickets."""
SIGNPOST_SKEW = timedelta(seconds=2)
"""The cursor never passes the poll's start, in the helpdesk's time, minus this allowance (for
the Date header's one-second resolution and stamps made as the poll starts)."""
FAILED_TICKETS = "sync.failed_tickets"
"""Meta key: ticket id → the version that could not be handled (logged once per version)."""
SEEN_KEPT = timedelta(hours=1)
"""Seen versions are remembered this long before the overlap window."""
CLOCK_SKEW_WARNED = "sync.clock_skew_warned"
"""Meta key: true while a helpdesk clock skew over half the overlap has been logged."""
ZERO = timedelta(0)


def run(ctx: JobContext) -> JobResult:
    result = JobResult(NAME)
    store = ctx.store
    stream = f"{ctx.adapter.name}.tickets"
    now = ctx.clock.now()
    overlap = timedelta(seconds=ctx.settings.poll_overlap_seconds)
    # the helpdesk stamps updated_at by its own clock: the signpost is taken in its time
    cursor = PollCursor(
        store.get_cursor(stream),
        now=now + (ctx.adapter.clock_offset() or ZERO),
        overlap=overlap,
        first_lookback=INITIAL_LOOKBACK,
        skew=SIGNPOST_SKEW,
    )
    p = SyncPass(ctx, result, cursor.since)
    log.debug(
        "sync.poll since=%s signpost=%s", cursor.since.isoformat(), cursor.signpost.isoformat()
    )
    returned: set[int] = set()
    for ticket in ctx.adapter.changed_tickets(cursor.since):
        returned.add(ticket.id)
        if ctx.stop.is_set():
            log.info("sync.stopping during poll: cursor stays at %s", cursor.position.isoformat())
            return result
        if store.ticket_seen(ticket.id, ticket.updated_at):
            result.add("tickets_unchanged")
            continue
        if _awaiting_link(p, ticket):
            # Our escalation ticket, created but not yet committed as such (a crash or a lost
            # answer after the POST): an agent's change to it must not be marked seen
            # unhandled. Leave it unseen, and the cursor before it, until it is.
            cursor.hold(ticket.updated_at)
            result.add("tickets_deferred")
            continue
        try:
            plans = _plan(p, ticket)
            position = cursor.after(ticket.updated_at)
            with ctx.outbox.transaction() as tx:
                for plan in plans:
                    plan(tx)
                store.note_ticket_seen(tx, ticket.id, ticket.updated_at)
                store.set_cursor(tx, stream, cursor.stored_value(position), cursor.signpost)
        except (Unauthorized, LeaseLost, StoreUnavailable, StoreConflict):
            # the token was refused, another worker leads now, or the store is down or in
            # conflict: the whole pass stops (the worker waits, or runs it again), the cursor
            # stays — none of these is this ticket's fault
            raise
        except Forbidden as exc:
            _ticket_failed(p, ticket, exc, cursor)
            continue
        except TransientError:
            raise  # the helpdesk is down: the whole pass stops, the cursor stays
        except Exception as exc:  # noqa: BLE001 - this ticket only: hold it, go on
            _ticket_failed(p, ticket, exc, cursor)
            continue
        cursor.advance(position)
        result.add("tickets_changed")
    measured = ctx.adapter.clock_offset()  # this poll's own answers (the first pass has no other)
    if measured is not None:
        cursor.bound_signpost(now + measured - SIGNPOST_SKEW)
        _watch_skew(p, measured, overlap)
    with store.transaction() as tx:
        store.set_cursor(tx, stream, cursor.finished_value(), cursor.signpost)
        store.set_meta(tx, LAST_SUCCESSFUL_POLL, now.isoformat())
        store.forget_seen_before(tx, cursor.since - SEEN_KEPT)
    reach.check(ctx, result, returned)
    return result


def _plan(p: SyncPass, ticket: Ticket) -> list[Plan]:
    """Reads what is needed about a changed ticket and returns what to record."""
    store = p.store
    plans: list[Plan | None] = [reach.writes_due(p.ctx, ticket.id)]
    if p.binding.escalation_key_of(ticket):
        esc = store.escalation_by_ticket(ticket.id)
        if esc is None or esc.state in TERMINAL_STATES:
            if esc is not None:
                plans.append(parking.on_escalation_ticket(p, ticket, esc))  # reopened?
            return [plan for plan in plans if plan is not None]
        plans.append(levels.level_asked(p, ticket, esc))
        plans.append(carrier.carrier_log(p, ticket, esc))
        plans.append(rfo.gate(p, ticket, esc))
        plans.append(parking.on_escalation_ticket(p, ticket, esc))
        return [plan for plan in plans if plan is not None]
    active = store.active_escalation_for_ticket(ticket.id)
    flag = p.flag_state(ticket)
    if active is not None:
        if active.escalation_ticket_id is not None:
            plans.append(copying.scan_later(p, active, ticket))
            plans.append(merging.follow(p, active, ticket))
        plans.append(flagging.flagged_while_open(p, ticket, active, flag))
    elif flag.raised:
        plans.append(flagging.new_escalation(p, ticket))
    scanned = {active.id} if active is not None else set()
    for esc in store.active_escalations_for_customer(ticket.customer_id):
        if (
            esc.original_ticket_id != ticket.id
            and esc.flagged_at is not None
            and ticket.created_at >= esc.flagged_at
        ):
            plans.append(copying.scan_later(p, esc, ticket))
            scanned.add(esc.id)
    for esc in store.active_escalations_reading(ticket.id):
        # a ticket the escalation reads besides its original: a merge target (``merging``)
        if esc.id not in scanned and esc.escalation_ticket_id not in (None, ticket.id):
            plans.append(copying.scan_later(p, esc, ticket))
    return [plan for plan in plans if plan is not None]


def _watch_skew(p: SyncPass, offset: timedelta, overlap: timedelta) -> None:
    """Log once when the helpdesk's clock and this machine's differ by more than half the
    poll overlap (the poll is safe either way: its signpost is in the helpdesk's time, but
    every other time the worker shows or compares is its own), and once when they agree
    again."""
    store = p.store
    skewed = abs(offset) > overlap / 2
    if skewed == bool(store.get_meta(CLOCK_SKEW_WARNED)):
        return
    seconds = round(offset.total_seconds())
    if skewed:
        log.warning(
            "sync.clock_skew helpdesk=%s seconds=%+d: the helpdesk's clock is %s this"
            " machine's by more than half the poll overlap (%ss); the poll follows the"
            " helpdesk's time, but fix the clocks (NTP)",
            p.ctx.adapter.name,
            seconds,
            "ahead of" if seconds > 0 else "behind",
            round(overlap.total_seconds()),
        )
    else:
        log.info("sync.clock_skew_ok helpdesk=%s seconds=%+d", p.ctx.adapter.name, seconds)
    with store.transaction() as tx:
        store.set_meta(tx, CLOCK_SKEW_WARNED, skewed)


def _awaiting_link(p: SyncPass, ticket: Ticket) -> bool:
    """An escalation ticket whose escalation's create effect is still pending or in flight,
    so the store does not know it as that escalation's ticket yet."""
    key = p.binding.escalation_key_of(ticket)
    if not key or p.store.escalation_by_ticket(ticket.id) is not None:
        return False
    create = p.store.effect_by_key(CreateEscalation.name, CreateEscalation.key("escalation", key))
    return create is not None and create.state in (EffectState.PENDING, EffectState.IN_FLIGHT)


def _ticket_failed(p: SyncPass, ticket: Ticket, exc: Exception, cursor: PollCursor) -> None:
    """Keep a ticket that could not be handled unseen, and the cursor before it, so the next
    pass tries it again; say so once per version of the ticket, not every pass."""
    p.result.add("tickets_failed")
    failed = dict(p.store.get_meta(FAILED_TICKETS) or {})
    version = ticket.updated_at.isoformat()
    if failed.get(str(ticket.id)) != version:
        log.error(
            "sync.ticket_failed ticket=%s updated_at=%s error=%s: %s",
            ticket.id,
            version,
            type(exc).__name__,
            exc,
            exc_info=not isinstance(exc, HelpdeskError),
        )
        failed[str(ticket.id)] = version
        with p.store.transaction() as tx:
            p.store.set_meta(tx, FAILED_TICKETS, failed)
    cursor.hold(ticket.updated_at)
