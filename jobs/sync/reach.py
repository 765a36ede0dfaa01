"""Originals the worker can no longer read (issue 10 #7).

A ticket moved to a group the worker's account cannot read simply drops out of the poll's
search results (Zammad filters them, it does not say so), so its customer's mails stop being
copied and a flag set there is never seen. The search cannot tell "unchanged" from "out of
reach", so every ``REACH_CHECK_EVERY`` the original of each open escalation that the poll did
not return is read directly. A refusal (403) or a deletion (404) is logged once, by ticket
number, and listed in ``escalations status``; when it can be read again the worker says so
and scans it, so the mails that arrived meanwhile are copied.

Writes to a ticket out of reach wait (the executor keeps them pending); once the poll returns
that ticket again, ``writes_due`` makes them due at once rather than after their back-off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from connector.errors import Forbidden, NotFound
from escalations.effects.helpdesk import waiting_on
from escalations.models import Escalation, State
from escalations.store.base import OUT_OF_REACH, Transaction
from jobs.context import JobContext, JobResult

log = logging.getLogger(__name__)

REACH_CHECK_EVERY = timedelta(minutes=10)
CHECKED_AT = "sync.reach_checked_at"
"""Meta key: when the originals were last read directly."""
WITH_TICKET = (State.OPEN, State.RESOLVED, State.PARKED, State.CONFIRMED)


def due(ctx: JobContext, now: datetime) -> bool:
    last = ctx.store.get_meta(CHECKED_AT)
    if not last:
        return True
    checked = datetime.fromisoformat(last)
    return not checked <= now < checked + REACH_CHECK_EVERY  # a clock stepped back: check


def check(ctx: JobContext, result: JobResult, returned: Collection[int]) -> None:
    """Read each open escalation's original the poll did not return (and each already out of
    reach), at most every ``REACH_CHECK_EVERY``."""
    now = ctx.clock.now()
    if not due(ctx, now):
        return
    out: dict[str, dict[str, str]] = dict(ctx.store.get_meta(OUT_OF_REACH) or {})
    for esc in ctx.store.escalations_in(*WITH_TICKET):
        ticket_id = esc.original_ticket_id
        if ticket_id in returned and str(ticket_id) not in out:
            continue
        if ctx.stop.is_set():
            return
        try:
            ticket = ctx.adapter.get_ticket(ticket_id)
        except (Forbidden, NotFound) as exc:
            if str(ticket_id) not in out:
                why = "deleted" if isinstance(exc, NotFound) else "not readable by the worker"
                out[str(ticket_id)] = _lost(esc, why, now)
                result.add("originals_out_of_reach")
            continue
        if out.pop(str(ticket_id), None) is not None:
            with ctx.store.transaction() as tx:
                ctx.store.request_scan(tx, esc.id, ticket_id, ticket.number, now)
                writes_due(ctx, ticket_id)(tx)
            result.add("originals_back_in_reach")
            log.info(
                "sync.reach_regained esc=%s ticket=%s number=%s: its emails are copied again",
                esc.key,
                ticket_id,
                ticket.number,
            )
    with ctx.store.transaction() as tx:
        ctx.store.set_meta(tx, OUT_OF_REACH, out)
        ctx.store.set_meta(tx, CHECKED_AT, now.isoformat())


def writes_due(ctx: JobContext, ticket_id: int) -> Callable[[Transaction], None]:
    """A plan for a ticket the poll returned (so the worker can read it): writes that waited
    for it to be in reach again become due now."""

    def plan(tx: Transaction) -> None:
        released = ctx.store.expedite(tx, error_prefix=waiting_on(ticket_id), now=ctx.clock.now())
        if released:
            log.info(
                "sync.writes_released ticket=%s count=%s: the ticket is in reach again",
                ticket_id,
                released,
            )

    return plan


def _lost(esc: Escalation, why: str, now: datetime) -> dict[str, str]:
    number = esc.original_ticket_number or "?"
    log.error(
        "sync.reach_lost esc=%s ticket=%s number=%s: %s (moved to a group the worker cannot "
        "read?); its customer's emails are not copied and a flag on it is not seen until it "
        "can be read again",
        esc.key,
        esc.original_ticket_id,
        number,
        why,
    )
    return {"escalation": esc.key, "number": number, "why": why, "since": now.isoformat()}
