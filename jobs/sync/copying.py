"""Copying customer messages (DESIGN.md rule 3): which source tickets to scan, and the ``copy``
job that scans them.

A scan request is recorded in the same transaction that sees the change (the outbox rule) and
cleared in the transaction that records the copy intents, so a crash in between loses
nothing. Copies of one escalation are ordered (``after`` the previous copy) so they land in
the order the customer wrote them; one the helpdesk refused for good does not hold back the
rest.
"""

from __future__ import annotations

import logging

from connector.base import Article, Ticket
from connector.errors import Forbidden, NotFound
from escalations import copies
from escalations.effects.helpdesk import CopyArticle
from escalations.models import (
    TERMINAL_STATES,
    CopiedArticle,
    EffectRef,
    EffectState,
    Escalation,
    State,
)
from escalations.people import People
from escalations.store.base import ScanRequest, Transaction
from jobs import parking
from jobs.context import JobContext, JobResult
from jobs.sync._pass import Plan, SyncPass

log = logging.getLogger(__name__)

NAME = "copy"


def scan_later(p: SyncPass, esc: Escalation, ticket: Ticket) -> Plan | None:
    """A scan of the changed ``ticket`` for the escalation, unless every article on it is
    one the copy job has already listed for it or the worker wrote there itself (the echo of
    the worker's own note on the original, say): then a scan would copy nothing."""
    if p.nothing_new(esc.id, ticket):
        p.result.add("scans_not_needed")
        return None

    def plan(tx: Transaction) -> None:
        if p.store.request_scan(tx, esc.id, ticket.id, ticket.number, p.ctx.clock.now()):
            p.result.add("scans_requested")

    return plan


def run(ctx: JobContext) -> JobResult:
    """For each requested scan, list the source ticket's articles and request a copy of
    every customer message not yet copied, in order; then clear the request."""
    result = JobResult(NAME)
    for request in ctx.store.pending_scans():
        if ctx.stop.is_set():
            break
        esc = ctx.store.get_escalation(request.escalation_id)
        if esc is not None and _may_reopen(esc):
            continue  # closed, for now: an agent may reopen it, and then it is copied
        if esc is None or esc.state in TERMINAL_STATES:
            with ctx.store.transaction() as tx:
                ctx.store.clear_scan(tx, request.escalation_id, request.ticket_id)
            continue
        if esc.escalation_ticket_id is None:
            continue  # the escalation ticket is not created yet; scanned after it is
        try:
            listed = ctx.adapter.list_articles(request.ticket_id)
        except Forbidden as exc:
            # the bot may not read this ticket (yet): the request stays for the next pass
            result.add("scans_refused")
            log.warning(
                "sync.scan_refused esc=%s ticket=%s error=%s", esc.key, request.ticket_id, exc
            )
            continue
        except NotFound:
            # deleted (or merged away) since the scan was requested: nothing is left to copy,
            # and the request must not hold up the scans after it
            with ctx.store.transaction() as tx:
                ctx.store.clear_scan(tx, request.escalation_id, request.ticket_id)
            result.add("scans_ended_ticket_gone")
            log.warning(
                "sync.scan_ended esc=%s ticket=%s number=%s: the ticket no longer exists",
                esc.key,
                request.ticket_id,
                request.ticket_number,
            )
            continue
        _request_copies(ctx, result, esc, request, listed)
    return result


def _request_copies(
    ctx: JobContext,
    result: JobResult,
    esc: Escalation,
    request: ScanRequest,
    listed: list[Article],
) -> None:
    """Request a copy of each customer message in ``listed`` not copied yet, and record
    every listed article as known for the escalation (``SyncPass.nothing_new``)."""
    assert esc.escalation_ticket_id is not None
    messages = [a for a in listed if a.is_customer_message and _in_escalation(esc, request, a)]
    store = ctx.store
    limits = ctx.binding.limits
    copied = store.copied_articles(esc.id)
    done = {c.source_article_id for c in copied}
    after = _last_copy(ctx, esc, copied[-1].source_article_id) if copied else None
    now = ctx.clock.now()
    owner_name = (
        People(ctx.adapter, ctx.binding, ctx.profile).name(esc.owner_id)
        if esc.state is State.PARKED
        else ""
    )
    newest: Article | None = None
    with ctx.outbox.transaction() as tx:
        for article in messages:
            if article.id in done:
                continue
            row = CopiedArticle(
                escalation_id=esc.id,
                source_ticket_id=article.ticket_id,
                source_article_id=article.id,
                copied_at=now,
            )
            if not store.record_copied_article(tx, row):
                continue
            payload = copies.capture(
                article,
                escalation_ticket_id=esc.escalation_ticket_id,
                source_number=request.ticket_number,
                attachment_max_bytes=limits.attachment_max_bytes,
                body_max_chars=limits.body_max_chars,
                tz=ctx.profile.tz,
            )
            intent = CopyArticle.intent(
                CopyArticle.key("copy", esc.key, article.id),
                payload,
                escalation_id=esc.id,
                after=after,
            )
            ctx.outbox.request(tx, intent)
            after = intent.ref
            result.add("copies_requested")
            newest = article if newest is None or article.created_at > newest.created_at else newest
        if newest is not None and parking.customer_wrote(
            ctx,
            tx,
            esc,
            at=newest.created_at,
            what=_what_arrived(esc, request, newest),
            owner_name=owner_name,
        ):
            result.add("escalations_unparked")
        store.note_articles_known(tx, esc.id, request.ticket_id, (a.id for a in listed))
        store.clear_scan(tx, request.escalation_id, request.ticket_id)


def _in_escalation(esc: Escalation, request: ScanRequest, article: Article) -> bool:
    """Every customer message of the original is copied; on another ticket (a new ticket of
    the customer, a ticket the original was merged into), those from the flag on: a merge
    target's own emails from before the escalation are not part of it."""
    if request.ticket_id == esc.original_ticket_id or esc.flagged_at is None:
        return True
    return article.created_at >= esc.flagged_at


def _may_reopen(esc: Escalation) -> bool:
    """Closed after it ran (not abandoned, its ticket not deleted) and not purged: a scan
    requested before the close waits, since a reopen must still copy what it finds."""
    return (
        esc.state in (State.CLOSED, State.ARCHIVED)
        and esc.opened_at is not None
        and esc.confirmed_at is not None
    )


def _what_arrived(esc: Escalation, request: ScanRequest, article: Article) -> str:
    subject = f" \u201c{article.subject}\u201d" if article.subject else ""
    if request.ticket_id == esc.original_ticket_id:
        return f"an email{subject} on #{request.ticket_number}"
    return f"a new ticket #{request.ticket_number}{subject}"


def _last_copy(ctx: JobContext, esc: Escalation, source_article_id: int) -> EffectRef | None:
    """The copy new copies must follow, to keep the original order; none if it failed for
    good, so one email the helpdesk refused does not hold back every later one."""
    ref = EffectRef(CopyArticle.name, CopyArticle.key("copy", esc.key, source_article_id))
    last = ctx.store.effect_by_key(ref.kind, ref.key)
    if last is None or last.state is EffectState.FAILED:
        return None
    return ref
