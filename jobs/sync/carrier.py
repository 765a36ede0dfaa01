"""The carrier contact log (DESIGN.md rule 5): each carrier-contact note an agent writes on an
escalation ticket is recorded, and one the parser cannot read in full gets one reply (its
effect keyed by the note's article id) naming each detail to fix and how to resubmit; when an
agent marks the carrier route as failed, everything collected goes to the customer-support
supervisor in one note naming that agent (from the ticket's history), and the ticket to
them."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from connector.base import Article, ArticleKind, Sender, Ticket
from escalations import notes
from escalations.carrier import parse_carrier_note
from escalations.effects.helpdesk import AddNote, UpdateTicket, UpdateTicketPayload
from escalations.lifecycle import note_intent
from escalations.markers import markers_in
from escalations.models import CarrierContact, Escalation
from escalations.store.base import Transaction
from jobs.sync._pass import Plan, SyncPass
from jobs.sync.credit import credit

log = logging.getLogger(__name__)

HANDOVER = "carrier-handover"


def carrier_log(p: SyncPass, ticket: Ticket, esc: Escalation) -> Plan | None:
    carrier = p.profile.carrier
    known = {c.source_article_id: c for c in p.store.carrier_contacts(esc.id)}
    new: list[CarrierContact] = []
    written_at: dict[int, datetime] = {}
    now = p.ctx.clock.now()
    # every article known (the echo of the worker's own copy or note): nothing to list
    listed = [] if p.nothing_new(esc.id, ticket) else p.adapter.list_articles(ticket.id)
    examined = [a.id for a in listed]
    for article in listed:
        if article.id in known or not _written_by_an_agent(p, article):
            continue
        parsed = parse_carrier_note(
            article.body,
            heading=p.binding.carrier_heading,
            written_at=article.created_at,
            tz=p.tz,
            stages=tuple(carrier.stages),
            required=tuple(carrier.required_details),
            escalation_id=esc.id,
            source_article_id=article.id,
            now=now,
        )
        if parsed is not None:
            new.append(parsed)
            written_at[article.id] = article.created_at
    handover_key = AddNote.key(HANDOVER, esc.key)
    route_failed = p.store.effect_by_key(AddNote.name, handover_key) is None and (
        p.binding.route_failed(ticket, matched=p.matches(p.binding.route_failed_criterion, ticket))
    )
    if not new and not route_failed and not examined:
        return None
    supervisor = p.people.for_role(carrier.handover_role) if route_failed else None
    handover_html = ""
    if route_failed:
        rows = sorted([*known.values(), *new], key=lambda c: c.called_at or ticket.created_at)
        handover_html = notes.carrier_handover_note(
            supervisor.display_name if supervisor else "(no supervisor mapped)",
            rows,
            credit(p, ticket, p.binding.route_failed_event, what="route_failed").text,
            ticket.updated_at,
            p.tz,
        )
    incomplete_html = {
        c.source_article_id: notes.carrier_incomplete_note(
            written_at[c.source_article_id],
            c.missing,
            c.problems,
            p.tz,
            heading=p.binding.carrier_heading,
        )
        for c in new
        if not c.complete
    }

    def plan(tx: Transaction) -> None:
        p.store.note_articles_known(tx, esc.id, ticket.id, examined)
        for contact in new:
            p.store.record_carrier_contact(tx, contact)
            p.result.add("carrier_contacts")
            if contact.source_article_id in incomplete_html:
                p.ctx.outbox.request(
                    tx,
                    note_intent(
                        "carrier-incomplete",
                        esc,
                        contact.source_article_id,
                        html=incomplete_html[contact.source_article_id],
                        subject="Carrier contact incomplete",
                        ticket_id=ticket.id,
                    ),
                )
        if route_failed:
            note = note_intent(
                HANDOVER,
                esc,
                html=handover_html,
                subject="Carrier route failed",
                ticket_id=ticket.id,
            )
            p.ctx.outbox.request(tx, note)
            if supervisor is not None:
                p.ctx.outbox.request(
                    tx,
                    UpdateTicket.intent(
                        UpdateTicket.key("carrier-handover-owner", esc.key),
                        UpdateTicketPayload(ticket_id=ticket.id, owner_id=supervisor.id),
                        escalation_id=esc.id,
                        after=note.ref,
                    ),
                )
                # the supervisor owns the escalation now: the store says so, as it does for
                # a level's owner (the report compares the two; --repair gives the ticket back
                # to the owner the store names)
                current = p.store.get_escalation(esc.id) or esc
                if current.owner_id != supervisor.id:
                    p.store.update_escalation(tx, replace(current, owner_id=supervisor.id))
            p.result.add("carrier_handovers")
            log.info("escalation.carrier_handover esc=%s ticket=%s", esc.key, ticket.id)

    return plan


def _written_by_an_agent(p: SyncPass, article: Article) -> bool:
    return (
        article.sender is Sender.AGENT
        and article.kind is ArticleKind.NOTE
        and not markers_in(article.body)
        and article.created_by_id != p.people.me.id
    )
