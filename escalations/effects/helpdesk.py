"""The effect kinds that write to the helpdesk, each given its adapter when built.

=====================  =================================  ==============================
kind                   write                              look-before-write
=====================  =================================  ==============================
create_escalation      create_ticket (atomic where the    find_ticket_by_marker
                       helpdesk can: first note, link,
                       marks, subscriptions)
note                   add_article (internal note)        find_article_by_marker
copy_article           add_article (+ attachments)        find_article_by_marker
tags                   set_tags (read, then only diff)    none: idempotent
update_ticket          update_ticket (owner/state/fields) none: idempotent
link                   link_tickets (reads first)         none: idempotent
subscribe              subscribe (reads first)            none: idempotent
=====================  =================================  ==============================

A payload names the ticket it writes to either by id or as "the escalation ticket of
escalation N" (``escalation_ticket_of``), resolved from the store when the write is made: a
write chained ``after`` the create of a helpdesk that cannot create atomically does not know
the new ticket's id when it is requested.

Payload shapes (version 1) are those stored before payloads were typed, so rows written by
that code load unchanged.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, ClassVar, Protocol

from pydantic import model_validator

from connector.base import (
    ArticleDraft,
    FieldValue,
    HelpdeskAdapter,
    TicketChanges,
    TicketDraft,
)
from connector.errors import Forbidden, Rejected
from escalations import copies
from escalations.effects.base import EffectError, EffectKind, Payload
from escalations.models import Effect
from escalations.store.base import Store, Transaction

log = logging.getLogger(__name__)

CREATE_ESCALATION = "create_escalation"
NOTE = "note"
COPY_ARTICLE = "copy_article"
TAGS = "tags"
UPDATE_TICKET = "update_ticket"
LINK = "link"
SUBSCRIBE = "subscribe"


# -- payloads ---------------------------------------------------------------------------------


class Targeted(Payload):
    """A payload that writes to one ticket: by id, or the escalation ticket of an escalation."""

    ticket_id: int | None = None
    escalation_ticket_of: int | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Targeted:
        if (self.ticket_id is None) == (self.escalation_ticket_of is None):
            raise ValueError("name the ticket by ticket_id or by escalation_ticket_of")
        return self


class CreateEscalationPayload(Payload):
    title: str
    group: str
    customer_id: int
    organization_id: int | None = None
    state: str | None = None
    owner_id: int | None = None
    tags: tuple[str, ...] = ()
    fields: dict[str, FieldValue] = {}
    parent_id: int
    """The original ticket; the created ticket is found again among the tickets linked to
    it (or however else the adapter finds a marker)."""
    link_at_create: bool = True
    """Link to ``parent_id`` in the create itself (an atomic create); else a ``link`` effect
    follows."""
    mention_user_ids: tuple[int, ...] = ()
    note_html: str
    note_subject: str | None = None
    opened_at: datetime
    original_number: str


class NotePayload(Targeted):
    html: str
    subject: str | None = None


class TagsPayload(Targeted):
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


class UpdateTicketPayload(Targeted):
    owner_id: int | None = None
    state: str | None = None
    group: str | None = None
    title: str | None = None
    pending_until: datetime | None = None
    fields: dict[str, FieldValue] = {}


class LinkPayload(Targeted):
    """Link the target (the child) to ``parent_id``."""

    parent_id: int


class SubscribePayload(Targeted):
    user_id: int


# -- resolving targets ------------------------------------------------------------------------


def resolve(store: Store, payload: Targeted) -> int:
    """The ticket id a payload writes to.

    Raises:
        Rejected: the escalation ticket it names was never created (the create failed).
    """
    if payload.ticket_id is not None:
        return payload.ticket_id
    assert payload.escalation_ticket_of is not None
    esc = store.get_escalation(payload.escalation_ticket_of)
    if esc is None or esc.escalation_ticket_id is None:
        raise Rejected(
            f"escalation {payload.escalation_ticket_of} has no escalation ticket (its create "
            "did not succeed)"
        )
    return esc.escalation_ticket_id


class EscalationEvents(Protocol):
    """What follows the create of an escalation ticket (``escalations.lifecycle``)."""

    def escalation_created(
        self,
        tx: Transaction,
        escalation_id: int,
        *,
        ticket_id: int,
        number: str,
        opened_at: datetime,
        original_number: str,
    ) -> None: ...

    def creation_refused(self, tx: Transaction, escalation_id: int, error: str) -> None: ...


# -- kinds ------------------------------------------------------------------------------------


class CreateEscalation(EffectKind[CreateEscalationPayload]):
    """The escalation ticket. On commit the escalation opens and its follow-ups are requested
    (``EscalationEvents.escalation_created``); refused for good, it ends before it began."""

    name: ClassVar[str] = CREATE_ESCALATION
    payload_type = CreateEscalationPayload

    def __init__(self, adapter: HelpdeskAdapter, events: EscalationEvents) -> None:
        self.adapter = adapter
        self.events = events

    @classmethod
    def key(cls, purpose: str, scope: str, *parts: object) -> str:
        """The escalation's own key (one create per escalation): ``key("escalation", k)``."""
        if purpose != "escalation" or parts:
            raise ValueError("a create_escalation key is key('escalation', <escalation key>)")
        return scope

    def apply(self, effect: Effect, payload: CreateEscalationPayload) -> str | None:
        draft = TicketDraft(
            title=payload.title,
            group=payload.group,
            customer_id=payload.customer_id,
            organization_id=payload.organization_id,
            state=payload.state,
            owner_id=payload.owner_id,
            tags=frozenset(payload.tags),
            fields=dict(payload.fields),
            parent_id=payload.parent_id if payload.link_at_create else None,
            mention_user_ids=payload.mention_user_ids,
            first_note=ArticleDraft(body=payload.note_html, subject=payload.note_subject),
        )
        created = self.adapter.create_ticket(draft, marker=effect.marker)
        return f"{created.id}#{created.number}"

    def find(self, effect: Effect, payload: CreateEscalationPayload) -> str | None:
        ticket_id = self.adapter.find_ticket_by_marker(effect.marker, linked_to=payload.parent_id)
        if ticket_id is None:
            return None
        return f"{ticket_id}#{self.adapter.get_ticket(ticket_id).number}"

    def on_commit(
        self,
        tx: Transaction,
        effect: Effect,
        payload: CreateEscalationPayload,
        remote_id: str | None,
    ) -> None:
        if remote_id is None or effect.escalation_id is None:
            raise EffectError(f"create_escalation {effect.id}: no remote id or escalation")
        ticket_id, number = remote_id.split("#", 1)
        self.events.escalation_created(
            tx,
            effect.escalation_id,
            ticket_id=int(ticket_id),
            number=number,
            opened_at=payload.opened_at,
            original_number=payload.original_number,
        )

    def on_fail(
        self, tx: Transaction, effect: Effect, payload: CreateEscalationPayload, error: str
    ) -> None:
        if effect.escalation_id is not None:
            self.events.creation_refused(tx, effect.escalation_id, error)


class AddNote(EffectKind[NotePayload]):
    """An internal note that emails nobody, its marker in the footer."""

    name: ClassVar[str] = NOTE
    payload_type = NotePayload

    def __init__(self, adapter: HelpdeskAdapter, store: Store) -> None:
        self.adapter = adapter
        self.store = store

    def apply(self, effect: Effect, payload: NotePayload) -> str | None:
        draft = ArticleDraft(body=payload.html, subject=payload.subject)
        ticket_id = resolve(self.store, payload)
        return str(self.adapter.add_article(ticket_id, draft, marker=effect.marker))

    def find(self, effect: Effect, payload: NotePayload) -> str | None:
        found = self.adapter.find_article_by_marker(resolve(self.store, payload), effect.marker)
        return None if found is None else str(found)


class CopyArticle(EffectKind[copies.CopyPayload]):
    """A customer message copied into the escalation ticket (``escalations.copies``)."""

    name: ClassVar[str] = COPY_ARTICLE
    payload_type = copies.CopyPayload

    def __init__(self, adapter: HelpdeskAdapter, store: Store) -> None:
        self.adapter = adapter
        self.store = store

    @classmethod
    def key(cls, purpose: str, scope: str, *parts: object) -> str:
        """``copy:<escalation key>:<source article id>``."""
        if purpose != "copy" or len(parts) != 1:
            raise ValueError("a copy_article key is key('copy', <escalation key>, <article id>)")
        return super().key(purpose, scope, *parts)

    def apply(self, effect: Effect, payload: copies.CopyPayload) -> str | None:
        draft = copies.render(self.adapter, payload)
        return str(self.adapter.add_article(payload.ticket_id, draft, marker=effect.marker))

    def find(self, effect: Effect, payload: copies.CopyPayload) -> str | None:
        found = self.adapter.find_article_by_marker(payload.ticket_id, effect.marker)
        return None if found is None else str(found)

    def on_commit(
        self, tx: Transaction, effect: Effect, payload: copies.CopyPayload, remote_id: str | None
    ) -> None:
        if effect.escalation_id is None or remote_id is None:
            raise EffectError(f"copy_article {effect.id}: no remote id or escalation")
        self.store.set_copy_article_id(tx, effect.escalation_id, payload.source.id, int(remote_id))


class SetTags(EffectKind[TagsPayload]):
    name: ClassVar[str] = TAGS
    payload_type = TagsPayload

    def __init__(self, adapter: HelpdeskAdapter, store: Store) -> None:
        self.adapter = adapter
        self.store = store

    def apply(self, effect: Effect, payload: TagsPayload) -> str | None:
        self.adapter.set_tags(
            resolve(self.store, payload),
            present=frozenset(payload.present),
            absent=frozenset(payload.absent),
        )
        return None


class UpdateTicket(EffectKind[UpdateTicketPayload]):
    name: ClassVar[str] = UPDATE_TICKET
    payload_type = UpdateTicketPayload

    def __init__(self, adapter: HelpdeskAdapter, store: Store) -> None:
        self.adapter = adapter
        self.store = store

    def apply(self, effect: Effect, payload: UpdateTicketPayload) -> str | None:
        changes = TicketChanges(
            owner_id=payload.owner_id,
            state=payload.state,
            group=payload.group,
            title=payload.title,
            pending_until=payload.pending_until,
            fields=dict(payload.fields),
        )
        self.adapter.update_ticket(resolve(self.store, payload), changes)
        return None


class LinkTickets(EffectKind[LinkPayload]):
    name: ClassVar[str] = LINK
    payload_type = LinkPayload

    def __init__(self, adapter: HelpdeskAdapter, store: Store) -> None:
        self.adapter = adapter
        self.store = store

    def apply(self, effect: Effect, payload: LinkPayload) -> str | None:
        self.adapter.link_tickets(payload.parent_id, resolve(self.store, payload))
        return None


class Subscribe(EffectKind[SubscribePayload]):
    name: ClassVar[str] = SUBSCRIBE
    payload_type = SubscribePayload

    def __init__(self, adapter: HelpdeskAdapter, store: Store) -> None:
        self.adapter = adapter
        self.store = store

    def apply(self, effect: Effect, payload: SubscribePayload) -> str | None:
        try:
            self.adapter.subscribe(resolve(self.store, payload), payload.user_id)
        except Forbidden as exc:
            # Subscribing someone else may need a permission the token lacks; a refusal is
            # about this one write, not the token as a whole.
            raise Rejected(f"subscribe refused: {exc.message}", status=exc.status) from None
        return None


def helpdesk_kinds(
    adapter: HelpdeskAdapter, store: Store, events: EscalationEvents
) -> list[EffectKind[Any]]:
    """Every helpdesk effect kind, each given its adapter."""
    return [
        CreateEscalation(adapter, events),
        AddNote(adapter, store),
        CopyArticle(adapter, store),
        SetTags(adapter, store),
        UpdateTicket(adapter, store),
        LinkTickets(adapter, store),
        Subscribe(adapter, store),
    ]
