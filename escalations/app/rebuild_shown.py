"""Whether the helpdesk already shows what an idempotent write (tags, ticket fields, a link, a
subscription) would make it show: such a write carries no marker to find it by, so the
rebuild (``jobs.rebuild``, given this by ``escalations.app.rebuild_command``) reads the
ticket and compares. Shown: the write is recorded as done without being sent; not shown: it
is left for the worker, which makes it."""

from __future__ import annotations

from datetime import datetime, timedelta

from connector.base import FieldValue, HelpdeskAdapter, Ticket
from escalations.clock import parse_instant
from escalations.effects.base import Payload
from escalations.effects.helpdesk import (
    LinkPayload,
    SubscribePayload,
    TagsPayload,
    Targeted,
    UpdateTicketPayload,
    resolve,
)
from escalations.store.base import Store

SLACK = timedelta(seconds=1)
"""Two instants this close are the same (a helpdesk may keep milliseconds, or drop them)."""


def shown(adapter: HelpdeskAdapter, store: Store, payload: Payload) -> bool | None:
    """``True``/``False`` for the idempotent payloads; ``None`` for any other (not ours to
    judge)."""
    if not isinstance(payload, Targeted):
        return None
    if isinstance(payload, TagsPayload):
        tags = adapter.get_tags(resolve(store, payload))
        return set(payload.present) <= tags and not set(payload.absent) & tags
    if isinstance(payload, LinkPayload):
        child = resolve(store, payload)
        return any(link.ticket_id == payload.parent_id for link in adapter.list_links(child))
    if isinstance(payload, SubscribePayload):
        return payload.user_id in adapter.list_subscribers(resolve(store, payload))
    if isinstance(payload, UpdateTicketPayload):
        return _ticket_shows(adapter.get_ticket(resolve(store, payload)), payload)
    return None


def _ticket_shows(ticket: Ticket, payload: UpdateTicketPayload) -> bool:
    wanted: list[tuple[object, object]] = [
        (payload.owner_id, ticket.owner_id),
        (payload.state, ticket.state),
        (payload.group, ticket.group),
        (payload.title, ticket.title),
    ]
    if any(want is not None and want != have for want, have in wanted):
        return False
    if payload.pending_until is not None and not _same_instant(
        payload.pending_until, ticket.pending_until
    ):
        return False
    return all(_same_value(v, ticket.fields.get(k)) for k, v in payload.fields.items())


def _instant(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and "T" in value:
        try:
            return parse_instant(value)
        except ValueError:
            return None
    return None


def _same_instant(a: object, b: object) -> bool:
    x, y = _instant(a), _instant(b)
    return x is not None and y is not None and abs(x - y) < SLACK


def _same_value(want: FieldValue, have: object) -> bool:
    if not want and not have:  # cleared: false, empty or null
        return True
    if _instant(want) is not None or _instant(have) is not None:
        return _same_instant(want, have)
    return str(want) == str(have)
