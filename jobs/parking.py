"""Resolve, park, confirm, close (DESIGN.md rule 7, seed 003; issue 12): what the sync pass
does with a change an agent made to an escalation ticket's state, and with a customer who
writes again while parked.

- **resolve → park.** An open escalation whose ticket an agent closed (and that the RFO gate
  lets through) is resolved and parked at once: the parked state, pending until the end of
  parking (``[parking] days``), the parked mark, a note saying when the confirmation call is
  due and how to record its outcome.
- **while parked.** The outcome the agent records (in Zammad, a tag): *confirmed* → the
  escalation closes (the ticket, and per the mappings the original); *not satisfied* → back
  to open at the same level, the owner told. An agent who sets the ticket back to open
  un-parks it; one who closes it with no outcome recorded gets it back to parked (one note
  per parking); one who changes the level un-parks it, and the level applies. A new customer
  email on the original, or a new ticket of the customer, un-parks it too
  (``customer_wrote``, called by the copy job in the transaction that copies it).
- **reopened.** A closed escalation whose ticket an agent sets back to open within the
  retention period (``[archive] retention_months``) is open again: the same record, not a
  new escalation; what the customer wrote while it was closed is copied in then.

While the worker's own state writes to the ticket are still landing, the ticket's state is
the worker's doing, not an agent's: the decision waits for the version those writes make.
"""

from __future__ import annotations

import logging
from datetime import datetime

from connector.base import Ticket
from escalations import notes, parking, workflow
from escalations.comms.calendar import BusinessCalendar
from escalations.effects.helpdesk import UpdateTicket
from escalations.models import EffectState, Escalation, ParkingOutcome, State
from escalations.store.base import Transaction
from jobs.context import JobContext
from jobs.sync import levels
from jobs.sync._pass import Plan, SyncPass
from jobs.sync.rfo import needs_rfo

log = logging.getLogger(__name__)

REOPENABLE = frozenset({State.CLOSED, State.ARCHIVED})


def on_escalation_ticket(p: SyncPass, ticket: Ticket, esc: Escalation) -> Plan | None:
    """The plan for a change to an escalation ticket's state, if it means one."""
    if ticket.id != esc.escalation_ticket_id or _state_writes_landing(p.ctx, esc):
        return None
    if esc.state is State.OPEN and p.binding.closing(ticket) and not needs_rfo(p, ticket, esc):
        # a level set in the same change is applied first, in the same transaction (the
        # level's plan runs before this one, and parking reads the escalation afresh)
        return _resolved(p, ticket, esc)
    if esc.state is State.PARKED:
        return _while_parked(p, ticket, esc)
    if esc.state in REOPENABLE and p.binding.reopened(ticket):
        return _reopened(p, ticket, esc)
    return None


def _resolved(p: SyncPass, ticket: Ticket, esc: Escalation) -> Plan:
    calendar = BusinessCalendar.from_profile(p.profile)
    resolved_at = ticket.updated_at
    until = parking.pending_until(p.profile, calendar, resolved_at)
    opens, due = parking.confirmation_window(p.profile, calendar, resolved_at)
    html = notes.parked_note(until, opens, due, p.binding.outcome_howto, p.tz)

    def plan(tx: Transaction) -> None:
        p.lifecycle.parked(tx, esc, resolved_at=resolved_at, until=until, note_html=html)
        p.result.add("escalations_parked")

    return plan


def _while_parked(p: SyncPass, ticket: Ticket, esc: Escalation) -> Plan | None:
    outcome = p.binding.outcome(ticket, p.adapter)
    at = ticket.updated_at
    if outcome is ParkingOutcome.CONFIRMED:
        html = notes.closed_note(at, p.tz)

        def confirm(tx: Transaction) -> None:
            p.lifecycle.confirmed(tx, esc, at=at, note_html=html)
            p.result.add("escalations_closed")

        return confirm
    if outcome is ParkingOutcome.NOT_SATISFIED:
        return _unpark(p, esc, at, outcome, "the customer is not satisfied with the outcome")
    if p.binding.reopened(ticket):
        return _unpark(p, esc, at, ParkingOutcome.REOPENED, "an agent set the ticket back to open")
    if p.binding.requested_level(ticket) not in (None, esc.level):
        # work goes on: back to open, and the level applied in the same transaction
        unpark = _unpark(p, esc, at, ParkingOutcome.REOPENED, "an agent changed the level")
        move = levels.level_asked(p, ticket, workflow.apply(esc, workflow.Event.UNPARK, at))

        def both(tx: Transaction) -> None:
            unpark(tx)
            if move is not None:
                move(tx)

        return both
    if p.binding.closing(ticket):
        periods = p.store.parking_periods(esc.id)
        if not periods:
            return None
        until = periods[-1].pending_until
        html = notes.keep_parked_note(p.binding.outcome_howto)
        occurrence = at.isoformat()

        def keep(tx: Transaction) -> None:
            p.lifecycle.kept_parked(tx, esc, occurrence=occurrence, until=until, note_html=html)
            p.result.add("kept_parked")

        return keep
    return None


def _unpark(p: SyncPass, esc: Escalation, at: datetime, outcome: ParkingOutcome, why: str) -> Plan:
    html = notes.unparked_note(_owner_html(p.ctx, p.people.name(esc.owner_id), esc), why)

    def plan(tx: Transaction) -> None:
        p.lifecycle.unparked(tx, esc, at=at, outcome=outcome, reason=why, note_html=html)
        p.result.add("escalations_unparked")

    return plan


def _reopened(p: SyncPass, ticket: Ticket, esc: Escalation) -> Plan | None:
    if esc.opened_at is None or esc.closed_at is None:
        return None  # abandoned, or ended when its ticket was deleted
    retention = p.profile.archive.retention_months
    if ticket.updated_at >= parking.add_months(esc.closed_at, retention):
        log.info("escalation.reopen_too_late esc=%s ticket=%s", esc.key, ticket.id)
        return None
    other = p.store.active_escalation_for_ticket(esc.original_ticket_id)
    if other is not None:
        log.warning(
            "escalation.reopen_refused esc=%s ticket=%s: escalation %s is open on the original",
            esc.key,
            ticket.id,
            other.key,
        )
        return None
    html = notes.reopened_note(esc.closed_at, p.tz)
    at = ticket.updated_at
    catch_up = _written_while_closed(p, esc, esc.closed_at)

    def plan(tx: Transaction) -> None:
        p.lifecycle.reopened(tx, esc, at=at, note_html=html)
        for ticket_id, number in catch_up:
            p.store.request_scan(tx, esc.id, ticket_id, number, p.ctx.clock.now())
        p.result.add("escalations_reopened")

    return plan


def _written_while_closed(
    p: SyncPass, esc: Escalation, closed_at: datetime
) -> list[tuple[int, str]]:
    """The tickets whose customer messages the escalation must catch up on when it reopens:
    the original and the customer's tickets raised since the flag, changed since the close
    (while closed, nothing was copied from them). One search, from the close on."""
    found = []
    for changed in p.adapter.changed_tickets(closed_at):
        ours = changed.id == esc.original_ticket_id or (
            changed.customer_id == esc.customer_id
            and esc.flagged_at is not None
            and changed.created_at >= esc.flagged_at
            and not p.binding.escalation_key_of(changed)
        )
        if ours:
            found.append((changed.id, changed.number))
    return found


def customer_wrote(
    ctx: JobContext, tx: Transaction, esc: Escalation, *, at: datetime, what: str, owner_name: str
) -> bool:
    """In the copy job's transaction: a customer message newer than the current parking's
    start un-parks the escalation. ``False`` when it is not parked or the message is older."""
    if esc.state is not State.PARKED:
        return False
    periods = ctx.store.parking_periods(esc.id)
    if not periods or periods[-1].ended_at is not None or at <= periods[-1].resolved_at:
        return False
    why = f"the customer wrote again ({what})"
    html = notes.unparked_note(_owner_html(ctx, owner_name, esc), why)
    ctx.lifecycle.unparked(
        tx, esc, at=at, outcome=ParkingOutcome.CUSTOMER_WROTE, reason=why, note_html=html
    )
    return True


def _owner_html(ctx: JobContext, name: str, esc: Escalation) -> str:
    if esc.owner_id is None:
        return "Owner"
    return ctx.binding.person_html(esc.owner_id, name)


def _state_writes_landing(ctx: JobContext, esc: Escalation) -> bool:
    """Whether a write of the worker's that sets the escalation ticket's state is pending or
    in flight (parking, un-parking, closing, the RFO gate's reopen)."""
    return any(
        e.kind == UpdateTicket.name
        and e.payload.get("state") is not None
        and e.payload.get("ticket_id") == esc.escalation_ticket_id
        for e in ctx.store.effects(EffectState.PENDING, EffectState.IN_FLIGHT, escalation_id=esc.id)
    )
