"""The naive baseline, run in the same harness against the same sandbox: a poller without a
cursor. Each pass lists every ticket (the paged search with no lower bound on ``updated_at``,
to find flags) and then, for every open escalation, the articles of each of its two tickets,
one request per ticket — what a poller does that does not keep track of what changed.

It reads only; where a figure includes writes, the naive figure adds the same writes the
worker had to make (a naive poller must make them too)."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.zammad import ZammadAdapter
from escalations.models import State
from escalations.store.sqlite import SqliteStore

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def naive_pass(adapter: ZammadAdapter, store: SqliteStore) -> None:
    for _ticket in adapter.changed_tickets(EPOCH):
        pass
    for esc in store.escalations_in(State.OPEN):
        adapter.list_articles(esc.original_ticket_id)
        if esc.escalation_ticket_id is not None:
            adapter.list_articles(esc.escalation_ticket_id)
