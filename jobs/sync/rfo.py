"""The RFO gate (DESIGN.md rule 7, issue 11 #5): from ``process.rfo_required_from_level``, an
escalation ticket an agent closes without a Reason for Outage is put back to open by the
worker, with one note to the owner saying why and what to fill in.

It never fights an agent in a loop: each close without an RFO is reopened once (the write is
keyed by the ticket version that showed it), the note is written once per escalation, and a
close with the RFO filled in is let through.
"""

from __future__ import annotations

from connector.base import Ticket
from escalations import notes
from escalations.models import Escalation, State
from escalations.store.base import Transaction
from jobs.sync._pass import Plan, SyncPass


def needs_rfo(p: SyncPass, ticket: Ticket, esc: Escalation) -> bool:
    """Whether the ticket is closed at a level that needs an RFO, without one."""
    level = max(esc.level, p.binding.requested_level(ticket) or 0)
    return (
        level >= p.profile.process.rfo_required_from_level
        and p.binding.closing(ticket)
        and p.binding.rfo_of(ticket) is None
    )


def gate(p: SyncPass, ticket: Ticket, esc: Escalation) -> Plan | None:
    """The plan for an escalation ticket closed without the RFO its level needs, if it was."""
    if esc.state is not State.OPEN or not needs_rfo(p, ticket, esc):
        return None
    from_level = p.profile.process.rfo_required_from_level
    level = max(esc.level, p.binding.requested_level(ticket) or 0)
    owner = (
        p.binding.person_html(esc.owner_id, p.people.name(esc.owner_id))
        if esc.owner_id is not None
        else "Owner"
    )
    html = notes.rfo_missing_note(level, from_level, owner)
    occurrence = ticket.updated_at.isoformat()

    def plan(tx: Transaction) -> None:
        p.lifecycle.rfo_blocked(tx, esc, ticket_id=ticket.id, occurrence=occurrence, note_html=html)
        p.result.add("rfo_blocked")

    return plan
