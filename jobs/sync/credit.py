"""Whom a note credits for a flag, a level change or a failed carrier route: the agent the
helpdesk's history names for it, not the ticket's last editor (a tag write does not change
who last edited a ticket, and the customer's next email does). When the history cannot be
read, or names no agent (an automatic rule did it), the ticket's owner is credited instead,
and the note says so."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from connector.base import Ticket, TicketEvent, User
from escalations import notes
from escalations.notes import CreditBasis
from jobs.sync._pass import SyncPass

log = logging.getLogger(__name__)

Pick = Callable[[Sequence[TicketEvent]], TicketEvent | None]
"""Which event of a history did it (one of the binding's ``*_event`` readings)."""


@dataclass(frozen=True)
class Credit:
    user: User | None
    """An agent, or ``None`` when nobody can be named."""
    basis: CreditBasis

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user else None

    @property
    def text(self) -> str:
        """The person as a note names them, with why it is the owner when it is."""
        return notes.credited(self.user.display_name if self.user else None, self.basis)


def credit(p: SyncPass, ticket: Ticket, pick: Pick, *, what: str) -> Credit:
    """Who did ``what`` (a word for the log) on ``ticket``, as its history tells."""
    events = p.events(ticket)
    if events is None:
        return Credit(_agent(p, ticket.owner_id), CreditBasis.OWNER_HISTORY_UNREAD)
    event = pick(events)
    agent = _agent(p, event.actor_id if event else None)
    if agent is not None:
        return Credit(agent, CreditBasis.HISTORY)
    log.info(
        "sync.credit_owner ticket=%s what=%s actor=%s: the history names no agent for it",
        ticket.id,
        what,
        event.actor_id if event else None,
    )
    return Credit(_agent(p, ticket.owner_id), CreditBasis.OWNER_NOT_IN_HISTORY)


def _agent(p: SyncPass, user_id: int | None) -> User | None:
    user = p.people.user(user_id)
    return user if user is not None and user.is_agent else None
