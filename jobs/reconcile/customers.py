"""Customer emails on the *other* tickets of an escalation's customer (DESIGN.md rule 3).

While an escalation runs, the worker copies into its escalation ticket every customer email
of each ticket its customer creates from the flag on (``jobs.sync.poll``: a new ticket of the
same customer is scanned). The ticket checks (``jobs.reconcile.tickets``) look at the
original and at the copies that exist; this check finds the customers' tickets in the
helpdesk itself, so a ticket the worker never saw (missed by a poll, or its copies deleted)
is found too, and each email of it without a copy is one ``email_not_copied``.

Read in bulk: one ``customer_tickets`` read for the customers of every running escalation at
once (the adapter's few paged searches, ``Capability.CUSTOMER_TICKETS``), created since the
earliest of their flags; then, only for an escalation with such a ticket, its escalation
ticket's articles and each such ticket's articles (the helpdesk has no search over articles).
Left out: the escalation's own original (the ticket checks read it), escalation tickets,
merged tickets, and, within the grace, a ticket changed in a version the worker's poll has not
handled or an email newer than the grace.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from connector.base import Article, Capability, Ticket
from connector.errors import Forbidden, NotFound
from escalations.effects.helpdesk import COPY_ARTICLE, CopyArticle
from escalations.markers import marker_for
from escalations.models import ACTIVE_STATES, Effect, EffectState, Escalation
from escalations.reconcile.findings import FindingKind as K
from jobs.reconcile import snapshot
from jobs.reconcile.tickets import Checks, _marker_of, _message

log = logging.getLogger(__name__)

NOT_SEARCHABLE = (
    "customer emails on other tickets of the same customer: the helpdesk has no search for "
    "a customer's new tickets"
)


@dataclass
class _Watched:
    """A running escalation whose customer's new tickets are checked."""

    esc: Escalation
    ticket: Ticket
    """Its escalation ticket."""
    markers: Counter[str | None] | None = None
    """The markers in its escalation ticket, read when first needed."""
    effects: dict[str, Effect] = field(default_factory=dict)


def check(checks: Checks) -> int:
    """Lists the customer emails on other tickets of a running escalation's customer that have
    no copy in its escalation ticket; returns how many such tickets were checked."""
    ctx = checks.ctx
    watched = _watched(checks)
    if not watched:
        return 0
    checked = _merge_targets(checks, watched)
    if Capability.CUSTOMER_TICKETS not in ctx.adapter.capabilities:
        checks.found.skipped(NOT_SEARCHABLE)
        return checked
    by_customer: dict[int, list[_Watched]] = {}
    for w in watched:
        by_customer.setdefault(w.esc.customer_id, []).append(w)
    since = min(w.esc.flagged_at for w in watched if w.esc.flagged_at is not None)
    escalation_tickets = set(checks.snap.escalation_tickets) | {
        e.escalation_ticket_id
        for e in ctx.store.escalations_in()
        if e.escalation_ticket_id is not None
    }
    for ticket in ctx.adapter.customer_tickets(sorted(by_customer), created_since=since):
        if (
            ticket.id in escalation_tickets
            or ctx.binding.escalation_key_of(ticket) is not None
            or ticket.state in checks.snap.merged_states
        ):
            continue
        concerned = [
            w
            for w in by_customer.get(ticket.customer_id, [])
            if w.esc.original_ticket_id != ticket.id
            and w.esc.flagged_at is not None
            and ticket.created_at >= w.esc.flagged_at
        ]
        if not concerned or not checks.settled(ticket):
            continue
        articles = _articles(checks, ticket)
        if articles is None:
            continue
        checked += 1
        for w in concerned:
            _not_copied(checks, w, ticket, articles)
    log.info(
        "report.customer_tickets escalations=%d customers=%d tickets=%d",
        len(watched),
        len(by_customer),
        checked,
    )
    return checked


def _merge_targets(checks: Checks, watched: list[_Watched]) -> int:
    """The customer emails from the flag on that arrived on the ticket a running
    escalation's original was merged into (``jobs.sync.merging`` copies them); returns how
    many such tickets were checked."""
    checked = 0
    for w in watched:
        target_id = checks.merge_targets.get(w.esc.key)
        if target_id is None or target_id == w.ticket.id:
            continue
        try:
            target = snapshot.ticket(checks.ctx.adapter, checks.snap, target_id)
        except Forbidden as exc:
            checks.found.skipped(f"merge target of escalation {w.esc.key}: not readable ({exc})")
            continue
        if target is None or target.state in checks.snap.merged_states:
            continue
        if not checks.settled(target):
            continue
        articles = _articles(checks, target)
        if articles is None:
            continue
        checked += 1
        _not_copied(checks, w, target, articles, where="the ticket its original was merged into")
    return checked


def _watched(checks: Checks) -> list[_Watched]:
    """The running escalations with a settled escalation ticket in the helpdesk (one deleted
    or merged is listed by the ticket checks)."""
    ctx = checks.ctx
    watched = []
    for esc in ctx.store.escalations_in(*ACTIVE_STATES):
        if esc.escalation_ticket_id is None or esc.flagged_at is None:
            continue
        try:
            ticket = snapshot.ticket(ctx.adapter, checks.snap, esc.escalation_ticket_id)
        except Forbidden:
            continue  # listed as not checked by the ticket checks
        if ticket is None or ticket.state in checks.snap.merged_states:
            continue
        if checks.settled(ticket):
            watched.append(_Watched(esc, ticket))
    return watched


def _articles(checks: Checks, ticket: Ticket) -> Sequence[Article] | None:
    try:
        return checks.ctx.adapter.list_articles(ticket.id)
    except NotFound:
        return None  # deleted since the search
    except Forbidden as exc:
        checks.found.skipped(f"ticket #{ticket.number}: its articles may not be read ({exc})")
        return None


def _not_copied(
    checks: Checks,
    w: _Watched,
    ticket: Ticket,
    articles: Sequence[Article],
    *,
    where: str = "a ticket the customer opened while the escalation runs",
) -> None:
    ctx = checks.ctx
    cutoff = checks.at - checks.grace
    flagged_at = w.esc.flagged_at
    messages = [
        a
        for a in articles
        if a.is_customer_message
        and a.created_at <= cutoff
        and (flagged_at is None or a.created_at >= flagged_at)  # as jobs.sync.copying does
    ]
    if not messages:
        return
    if w.markers is None:
        w.markers = Counter(_marker_of(a) for a in ctx.adapter.list_articles(w.ticket.id))
        w.effects = {
            e.marker.value: e
            for e in ctx.store.effects(escalation_id=w.esc.id)
            if e.kind == COPY_ARTICLE
        }
    for message in messages:
        marker = marker_for(COPY_ARTICLE, CopyArticle.key("copy", w.esc.key, message.id)).value
        effect = w.effects.get(marker)
        if w.markers[marker] or (effect is not None and effect.state is not EffectState.DONE):
            continue  # copied; or pending, in flight or failed: the effect checks list it
        checks.found.add(
            K.EMAIL_NOT_COPIED,
            f"article:{message.id}",
            f"{_message(message)} on #{ticket.number}, {where}, is not in escalation "
            f"ticket #{w.ticket.number} ({w.esc.key})",
            escalation=w.esc.key,
            ticket_id=ticket.id,
            ticket_number=ticket.number,
            other_ticket_id=w.ticket.id,
            since=message.created_at,
        )
