"""What the parts of one poll share: the context, the people met so far, the counts, and the
searches the binding asks for (each made at most once per pass, and only when a ticket
changed, so an idle poll stays one request)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from connector.base import Criterion, Ticket
from escalations.bindings.base import FlagState
from escalations.people import People
from escalations.store.base import Transaction
from jobs.context import JobContext, JobResult

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

    def flag_state(self, ticket: Ticket) -> FlagState:
        return self.binding.flag_state(
            ticket, matched=self.matches(self.binding.flag_criterion, ticket)
        )
