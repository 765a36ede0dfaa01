"""The Zammad marks the nightly reconciliation searches by (``escalations.reconcile.marks``):
the escalation tag, the escalated tag, the flag attribute and tag, one tag per level, and the
state names of ``mappings/zammad.toml``."""

from __future__ import annotations

from connector.base import Capability, Criterion
from escalations.bindings.zammad.fieldmap import ZammadFieldMap
from escalations.models import State
from escalations.profile import ProcessProfile
from escalations.reconcile.marks import ReconcileMarks

TICKET_LINK = "/#ticket/zoom/{id}"
"""The agent UI's address of a ticket (Zammad's desktop view)."""


def reconcile_marks(
    fieldmap: ZammadFieldMap, profile: ProcessProfile, capabilities: frozenset[Capability]
) -> ReconcileMarks:
    tags = Capability.TAGS in capabilities
    levels = range(1, profile.max_level + 1)
    states = fieldmap.states
    return ReconcileMarks(
        escalation_tickets=Criterion(tag=fieldmap.tags.escalation) if tags else None,
        escalated_originals=Criterion(tag=fieldmap.tags.escalated) if tags else None,
        flagged_by_value=(
            Criterion(field=fieldmap.flag.field, value=True) if fieldmap.flag.field else None
        ),
        flagged_by_search=Criterion(tag=fieldmap.flag.tag) if fieldmap.flag.tag and tags else None,
        level_marks={n: Criterion(tag=fieldmap.level_tag(n)) for n in levels} if tags else {},
        level_mark_names={n: fieldmap.level_tag(n) for n in levels} if tags else {},
        state_names={
            State.OPEN: states.open,
            State.PARKED: states.parked,
            State.CLOSED: states.closed,
            State.ARCHIVED: states.closed,
        },
        ticket_link=TICKET_LINK,
    )
