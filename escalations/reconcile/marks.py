"""What the reconciliation needs to know of a helpdesk's marks, in neutral terms: the searches
that find escalation tickets, escalated originals, flagged tickets and each level's mark, and
the ticket state each escalation state shows. Built from the helpdesk's field map by its
binding package (``escalations.bindings.zammad.marks``, chosen by ``jobs.reconcile``); the
job passes the criteria on unread, as it does the binding's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from connector.base import Criterion
from escalations.models import State


@dataclass(frozen=True)
class ReconcileMarks:
    escalation_tickets: Criterion | None
    """Finds every escalation ticket; ``None`` when no search can."""
    escalated_originals: Criterion | None
    """Finds every original marked as escalated."""
    flagged_by_value: Criterion | None
    """Finds tickets whose data shows the flag (``HelpdeskBinding.flag_state`` reads it)."""
    flagged_by_search: Criterion | None
    """The binding's ``flag_criterion``: finds tickets flagged in a way only a search
    shows (``flag_state(..., matched=True)``)."""
    level_marks: Mapping[int, Criterion] = field(default_factory=dict)
    """Per level, finds the tickets carrying that level's mark; empty without marks."""
    level_mark_names: Mapping[int, str] = field(default_factory=dict)
    """Per level, the mark's name as people see it."""
    state_names: Mapping[State, str] = field(default_factory=dict)
    """The ticket state an escalation in each of these states shows."""
    ticket_link: str = ""
    """Where agents open a ticket, relative to the helpdesk's base URL, with ``{id}``."""
