"""The helpdesk side of the reconciliation, read in bulk: one paged search per mark (the
escalation tickets, the escalated originals, the flagged tickets, each level's mark) instead
of one request per ticket; single reads only for the tickets a search did not return (to tell
deleted from merged from unmarked)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connector.base import Criterion, HelpdeskAdapter, Ticket
from connector.errors import Forbidden, NotFound
from escalations.reconcile.marks import ReconcileMarks

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Snapshot:
    escalation_tickets: dict[int, Ticket] = field(default_factory=dict)
    originals: dict[int, Ticket] = field(default_factory=dict)
    flagged: dict[int, Ticket] = field(default_factory=dict)
    flag_matched: set[int] = field(default_factory=set)
    """Flagged tickets the binding's flag search found."""
    level_members: dict[int, set[int]] = field(default_factory=dict)
    """Per level, the tickets carrying its mark."""
    merged_states: frozenset[str] = frozenset()
    single: dict[int, Ticket | None] = field(default_factory=dict)
    """Tickets read one by one: ``None`` when the helpdesk has no such ticket."""
    refused: dict[int, Forbidden] = field(default_factory=dict)
    """Tickets the token may not read, with the refusal."""

    @property
    def tickets_read(self) -> int:
        ids = set(self.escalation_tickets) | set(self.originals) | set(self.flagged)
        return len(ids | {i for i, t in self.single.items() if t is not None})


def _search(adapter: HelpdeskAdapter, criterion: Criterion) -> Iterable[Ticket]:
    return adapter.changed_tickets(EPOCH, matching=criterion)


def read(adapter: HelpdeskAdapter, marks: ReconcileMarks) -> Snapshot:
    snap = Snapshot()
    if marks.escalation_tickets is not None:
        snap.escalation_tickets = {t.id: t for t in _search(adapter, marks.escalation_tickets)}
    if marks.escalated_originals is not None:
        snap.originals = {t.id: t for t in _search(adapter, marks.escalated_originals)}
    if marks.flagged_by_value is not None:
        snap.flagged.update((t.id, t) for t in _search(adapter, marks.flagged_by_value))
    if marks.flagged_by_search is not None:
        for ticket in _search(adapter, marks.flagged_by_search):
            snap.flagged[ticket.id] = ticket
            snap.flag_matched.add(ticket.id)
    for level, criterion in marks.level_marks.items():
        snap.level_members[level] = {t.id for t in _search(adapter, criterion)}
    snap.merged_states = frozenset(s.name for s in adapter.list_states() if s.type == "merged")
    return snap


def ticket(adapter: HelpdeskAdapter, snap: Snapshot, ticket_id: int) -> Ticket | None:
    """The ticket from a search if one returned it, else read once; ``None`` if it is gone.
    Raises ``Forbidden`` (remembered) when the token may not read it."""
    for found in (snap.escalation_tickets, snap.originals, snap.flagged):
        if ticket_id in found:
            return found[ticket_id]
    if ticket_id in snap.refused:
        raise snap.refused[ticket_id]
    if ticket_id not in snap.single:
        try:
            snap.single[ticket_id] = adapter.get_ticket(ticket_id)
        except NotFound:
            snap.single[ticket_id] = None
        except Forbidden as exc:
            snap.refused[ticket_id] = exc
            raise
    return snap.single[ticket_id]
