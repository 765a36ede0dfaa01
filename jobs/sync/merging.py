"""Following an original an agent merged into another ticket (DESIGN.md rule 3).

Zammad's merge (``ticket.rb#merge_to``) moves the original's articles and links to the
target ticket and leaves the original a shell in a ``merged`` state; the customer's later
emails arrive on the target. When the poll sees the original of a running escalation merged,
the target is scanned for the escalation: its customer emails from the flag on are copied
(the original's, moved there, were copied already; copies are keyed by article id). After
that scan the escalation has read the target (``KnownArticles``), so each later change of the
target is scanned too (``jobs.sync.poll``), as a new ticket of the customer would be.
"""

from __future__ import annotations

import logging

from connector.base import LinkKind, Ticket
from connector.errors import Forbidden, NotFound
from escalations.models import Escalation
from jobs.sync import copying
from jobs.sync._pass import Plan, SyncPass

log = logging.getLogger(__name__)


def follow(p: SyncPass, esc: Escalation, original: Ticket) -> Plan | None:
    """A scan of the merge target for ``esc`` if ``original`` is merged; else ``None``.

    A merge moves every article away, so only an original missing articles the escalation
    has read there, or one it has read nothing of yet (after a rebuild), is looked at
    further (the helpdesk's states: one read per pass); any other change costs no request.
    A helpdesk whose ticket answer lists no article ids (osTicket) is not followed."""
    if original.article_ids is None:
        return None
    known = p.store.known_articles(esc.id, original.id)
    if known and known <= original.article_ids:
        return None
    if original.state not in p.merged_states():
        return None
    target = _target(p, original)
    if target is None:
        log.warning(
            "sync.merge_target_unknown esc=%s original=%s: merged, but no merge target is"
            " linked; its emails are not followed",
            esc.key,
            original.id,
        )
        return None
    if target.id == esc.escalation_ticket_id:
        return None  # merged into its own escalation ticket: the emails are there already
    log.info(
        "sync.merge_followed esc=%s original=%s target=%s number=%s",
        esc.key,
        original.id,
        target.id,
        target.number,
    )
    return copying.scan_later(p, esc, target)


def _target(p: SyncPass, original: Ticket) -> Ticket | None:
    """The merge moved every other link to the target, then linked the target as the
    merged ticket's parent: that parent is the target."""
    try:
        links = p.adapter.list_links(original.id)
        parents = [lk.ticket_id for lk in links if lk.kind is LinkKind.PARENT]
        return p.adapter.get_ticket(parents[0]) if parents else None
    except (NotFound, Forbidden):
        return None
