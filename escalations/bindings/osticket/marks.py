"""The osTicket marks the nightly reconciliation searches by (``escalations.reconcile.marks``).

osTicket has no tags, and a ``Criterion`` names a field *value*, so no search finds every
escalation ticket, escalated original or flagged ticket: those checks are reported as
skipped. What the report can compare are the statuses of ``mappings/osticket.toml``.
"""

from __future__ import annotations

from escalations.bindings.osticket.field_map import OsTicketFieldMap
from escalations.models import State
from escalations.reconcile.marks import ReconcileMarks

TICKET_LINK = "/scp/tickets.php?id={id}"
"""The agent panel's address of a ticket."""


def reconcile_marks(fieldmap: OsTicketFieldMap) -> ReconcileMarks:
    statuses = fieldmap.statuses
    return ReconcileMarks(
        escalation_tickets=None,
        escalated_originals=None,
        flagged_by_value=None,
        flagged_by_search=None,
        state_names={
            State.OPEN: statuses.open,
            State.PARKED: statuses.parked,
            State.CLOSED: statuses.closed,
            State.ARCHIVED: statuses.closed,
        },
        ticket_link=TICKET_LINK,
    )
