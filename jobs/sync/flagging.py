"""A flag on an original ticket (DESIGN.md rules 1–2): raise one escalation, or, if one is
already open, consume the flag and tell its owner — never a second escalation ticket."""

from __future__ import annotations

import logging
from datetime import timedelta

from connector.base import Capability, Ticket
from connector.errors import HelpdeskError
from escalations import notes, workflow
from escalations.bindings.base import FlagState, NewEscalationTicket
from escalations.effects.base import key_purpose
from escalations.models import EffectState, Escalation, State
from escalations.store.base import Transaction
from jobs.sync._pass import Plan, SyncPass
from jobs.sync.credit import Credit, credit

log = logging.getLogger(__name__)

NOT_GIVEN = "(not given)"


def escalation_key(helpdesk: str, ticket_id: int, sequence: int) -> str:
    """``<helpdesk>:ticket:<original id>:<n>``: the n-th escalation raised on a ticket."""
    return f"{helpdesk}:ticket:{ticket_id}:{sequence}"


def flagging_agent(p: SyncPass, ticket: Ticket) -> Credit:
    """Who flagged: the agent the ticket's history names for the latest flag (who ran the
    Escalate macro, or added the flag), not its last editor, which a flag added as a mark
    does not change and the customer's next email does. The ticket's owner, the agent
    handling the customer, when the history cannot be read or names no agent."""
    return credit(p, ticket, p.binding.flag_event, what="flag")


def repeat_faults(p: SyncPass, ticket: Ticket) -> tuple[int, int] | None:
    """(tickets, days): the customer's tickets created in the last ``repeat_fault_days`` days
    (seed 000: the escalation says whether this is a repeat fault), in one search. ``None``
    when switched off, when the helpdesk cannot count, or when the count fails: the note is
    information, and a failed count must not hold up the escalation."""
    days = p.profile.process.repeat_fault_days
    if days == 0 or Capability.COUNT_TICKETS not in p.adapter.capabilities:
        return None
    since = p.ctx.clock.now() - timedelta(days=days)
    try:
        count = p.adapter.count_customer_tickets(ticket.customer_id, created_since=since)
    except HelpdeskError as exc:
        log.warning("flag.repeat_faults_unknown ticket=%s error=%s", ticket.id, exc)
        return None
    if ticket.created_at >= since:
        count -= 1  # the ticket being escalated is not a repeat of itself
    return max(count, 0), days


def new_escalation(p: SyncPass, ticket: Ticket) -> Plan:
    profile = p.profile
    details = p.binding.flag_details(ticket)
    sequence = len(p.store.escalations_for_ticket(ticket.id)) + 1
    key = escalation_key(p.adapter.name, ticket.id, sequence)
    reason = details.reason
    reason_label = profile.reason(reason).label if reason in profile.reason_keys else NOT_GIVEN
    segment = details.segment if details.segment in profile.segments else ""
    segment = segment or profile.process.default_segment
    flagger = flagging_agent(p, ticket)
    flagged_by = flagger.user_id
    owner = p.people.owner_for_level(1, flagged_by=flagged_by, current=None, history=())
    watchers = tuple(u.id for u, _ in p.people.watchers_for_level(1))
    placeholder = p.people.placeholder_customer()
    now = p.ctx.clock.now()
    esc = workflow.flag(
        key=key,
        original_ticket_id=ticket.id,
        original_ticket_number=ticket.number,
        customer_id=ticket.customer_id,
        organization_id=ticket.organization_id,
        segment=segment,
        level=1,
        reason=reason,
        at=ticket.updated_at,
        updated_at=now,
        flagged_by_id=flagged_by,
        callback_at=details.callback_at,
        agreed_cadence_minutes=details.agreed_cadence_minutes,
        owner_id=owner,
    )
    opened = notes.EscalationOpened(
        original_number=ticket.number,
        original_title=ticket.title,
        level_name=profile.level(1).name,
        reason_label=reason_label,
        segment=profile.segment(segment).label,
        flagged_by=flagger.text,
        flagged_at=ticket.updated_at,
        callback_at=details.callback_at,
        owner=p.people.name(owner) if owner else "unassigned",
        agreed_cadence_minutes=details.agreed_cadence_minutes,
        repeat_faults=repeat_faults(p, ticket),
    )
    new = NewEscalationTicket(
        escalation=esc,
        original=ticket,
        customer_id=placeholder.id if placeholder else ticket.customer_id,
        organization_id=None if placeholder else ticket.organization_id,
        watcher_ids=watchers,
        note_html=opened.html(p.tz),
        note_subject=f"Escalation of #{ticket.number}",
        opened_at=now,
        flag=p.flag_state(ticket),
    )

    def plan(tx: Transaction) -> None:
        p.lifecycle.flagged(tx, new)
        p.result.add("escalations_flagged")

    return plan


def flagged_while_open(
    p: SyncPass, ticket: Ticket, esc: Escalation, flag: FlagState
) -> Plan | None:
    """A flag seen on the original of an open escalation: the flag being consumed by writes
    still pending, or a new flag (the agent ran the macro again)."""
    if not flag.raised or esc.state is State.FLAGGED or _flag_being_cleared(p, esc, flag):
        return None
    occurrence = ticket.updated_at.isoformat()
    html = notes.flagged_again_note(
        esc.escalation_ticket_number or "?",
        flagging_agent(p, ticket).text,
        ticket.updated_at,
        p.tz,
    )

    def plan(tx: Transaction) -> None:
        p.lifecycle.flagged_again(tx, esc, occurrence=occurrence, note_html=html, flag=flag)
        p.result.add("flagged_again")

    return plan


def _flag_being_cleared(p: SyncPass, esc: Escalation, flag: FlagState) -> bool:
    pending = frozenset(
        key_purpose(e.key)
        for e in p.store.effects(EffectState.PENDING, EffectState.IN_FLIGHT, escalation_id=esc.id)
    )
    return p.binding.flag_being_cleared(flag, pending)
