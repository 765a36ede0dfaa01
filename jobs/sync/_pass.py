"""What the parts of one poll share: the context, the people met so far, the counts, the
searches the binding asks for (each made at most once per pass, and only when a ticket
changed, so an idle poll stays one request) and the histories read to learn who did what
(only for a ticket version on which something is decided, at most once each); and whether a
changed ticket holds an article the worker has not accounted for (``nothing_new``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from connector.base import Capability, Criterion, Ticket, TicketEvent
from connector.errors import Forbidden, NotFound, Rejected, TransientError
from escalations.bindings.base import FlagState
from escalations.people import People
from escalations.store.base import Transaction
from jobs.context import JobContext, JobResult

log = logging.getLogger(__name__)

Plan = Callable[[Transaction], None]
"""What to record for one ticket version, run inside the poll's one transaction for it."""


class SyncPass:
    def __init__(self, ctx: JobContext, result: JobResult, since: datetime) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.adapter = ctx.adapter
        self.binding = ctx.binding
        self.lifecycle = ctx.lifecycle
        self.profile = ctx.profile
        self.tz = ctx.profile.tz
        self.people = People(ctx.adapter, ctx.binding, ctx.profile)
        self.result = result
        self.since = since
        self._hits: dict[Criterion, frozenset[int]] = {}
        self._events: dict[tuple[int, datetime], list[TicketEvent] | None] = {}
        self._merged_states: frozenset[str] | None = None

    def merged_states(self) -> frozenset[str]:
        """The names of the helpdesk's ``merged`` states (one read per pass, when asked)."""
        if self._merged_states is None:
            self._merged_states = frozenset(
                s.name for s in self.adapter.list_states() if s.type == "merged"
            )
        return self._merged_states

    def matches(self, criterion: Criterion | None, ticket: Ticket) -> bool:
        """Whether ``criterion``'s search (tickets changed since the poll's start that meet
        it) finds ``ticket``; one search per criterion per pass."""
        if criterion is None:
            return False
        if criterion not in self._hits:
            self._hits[criterion] = frozenset(
                t.id for t in self.adapter.changed_tickets(self.since, matching=criterion)
            )
        return ticket.id in self._hits[criterion]

    def events(self, ticket: Ticket) -> list[TicketEvent] | None:
        """The ticket's history (one request, once per ticket version and pass); ``None``
        when the helpdesk keeps none, or it could not be read: refused, gone, unreadable or
        unreachable after the retries, said in one line. Who did something then cannot be
        told, which is no reason to hold back what was decided."""
        if Capability.HISTORY not in self.adapter.capabilities:
            return None
        key = (ticket.id, ticket.updated_at)
        if key not in self._events:
            try:
                self._events[key] = self.adapter.ticket_events(ticket.id)
            except (Forbidden, NotFound, Rejected, TransientError) as exc:
                log.warning(
                    "sync.history_unread ticket=%s error=%s: %s (notes name the ticket's owner)",
                    ticket.id,
                    type(exc).__name__,
                    exc,
                )
                self._events[key] = None
        return self._events[key]

    def nothing_new(self, escalation_id: int, ticket: Ticket) -> bool:
        """Whether every article of ``ticket`` is one the worker has accounted for in the
        escalation (listed before, or written there itself): then listing it again finds
        nothing new, and the echo of the worker's own write costs no read. Exact ids from
        the ticket's answer, never a time or a count: an agent's article, however close to
        the worker's own write, has an id not yet known. ``False`` (read) when the answer
        does not list them."""
        if ticket.article_ids is None:
            return False
        return ticket.article_ids <= self.store.known_articles(escalation_id, ticket.id)

    def flag_state(self, ticket: Ticket) -> FlagState:
        return self.binding.flag_state(
            ticket, matched=self.matches(self.binding.flag_criterion, ticket)
        )
