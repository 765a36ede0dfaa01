"""The effect kinds that write to the helpdesk, each given its adapter when built.

=====================  =================================  ==============================
kind                   write                              look-before-write
=====================  =================================  ==============================
create_escalation      create_ticket (atomic where the    find_ticket_by_marker
                       helpdesk can: first note, link,
                       marks, subscriptions)
note                   add_article (internal note)        find_article_by_marker
copy_article           add_article (+ attachments)        find_article_by_marker
tags                   set_tags (adds unread; a removal   none: idempotent
                       reads first, then only diff)
update_ticket          update_ticket (owner/state/fields) none: idempotent
update_with_note       update_ticket carrying an internal find_article_by_marker
                       note (one atomic PUT; not
                       idempotent, never retried blind)
link                   link_tickets (reads first)         none: idempotent
subscribe              subscribe (reads first)            none: idempotent
=====================  =================================  ==============================

A payload names the ticket it writes to either by id or as "the escalation ticket of
escalation N" (``escalation_ticket_of``), resolved from the store when the write is made: a
write chained ``after`` the create of a helpdesk that cannot create atomically does not know
the new ticket's id when it is requested.

An article the worker writes (a note, a copy, the first note of a create, the note of an
update, where the helpdesk's answer names it) is recorded on commit as known for its
escalation and ticket (``Store.note_articles_known``), so the next poll does not list that
ticket again for the echo of the worker's own write alone.

Payload shapes (version 1) are those stored before payloads were typed, so rows written by
that code load unchanged. ``update_with_note`` is a kind of its own (not a field of
``update_ticket``) so that every ``update_ticket`` row, stored or requested, keeps its payload
and stays idempotent; a store holding the separate ``note`` and ``update_ticket`` writes of
an older version runs them as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import model_validator

from connector.base import (
    ArticleDraft,
    Criterion,
    FieldValue,
    HelpdeskAdapter,
    TicketChanges,
    TicketDraft,
)
from connector.errors import AppliedNotAsAsked, Conflict, Forbidden, NotFound, OutOfReach, Rejected
from escalations import copies
from escalations.effects.base import EffectError, EffectKind, Payload
from escalations.models import Effect
from escalations.store.base import Store, Transaction

log = logging.getLogger(__name__)

ATTACHMENT_ATTEMPTS = 3
"""From this try on (attempts and deferrals: a 502 on one file defers like an outage), a
copy goes without an attachment that keeps failing to download (named in the note instead),
so it and the copies after it are not held up."""

FIND_SLACK = timedelta(days=1)
"""How long before the escalation opened a created ticket may be stamped (clock skew) and
still be found again by its field."""

CREATE_ESCALATION = "create_escalation"
NOTE = "note"
COPY_ARTICLE = "copy_article"
TAGS = "tags"
UPDATE_TICKET = "update_ticket"
UPDATE_WITH_NOTE = "update_with_note"
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
    found_by: tuple[str, str] | None = None
    """(field, value) the created ticket carries, to find it again when its link to the
    original may not exist yet (a create that cannot link at once)."""
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


class UpdateWithNotePayload(UpdateTicketPayload):
    """An update that also creates an internal note on the ticket, in the same request."""

    note_html: str
    note_subject: str | None = None


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


class TicketGone(NotFound):
    """The ticket a write was for no longer exists (deleted in the helpdesk): re-read after
    the write's 404, so a 404 about something else (an attachment, a user) is not taken for
    it."""

    def __init__(self, ticket_id: int, cause: NotFound) -> None:
        super().__init__(
            f"ticket {ticket_id} no longer exists", status=cause.status, method=cause.method,
            path=cause.path, request_id=cause.request_id,
        )  # fmt: skip
        self.ticket_id = ticket_id


class TicketOutOfReach(OutOfReach):
    """The ticket a write was for cannot be read by the worker any more (moved to a group it
    has no access to): re-read after the write's 403, so a refusal of the write itself is not
    taken for it. The write waits (``waiting_on`` says how its ``last_error`` starts)."""

    def __init__(self, ticket_id: int, cause: Forbidden) -> None:
        super().__init__(
            f"ticket {ticket_id} is out of the worker's reach (moved to a group its user cannot"
            " read?)", status=cause.status, method=cause.method, path=cause.path,
            request_id=cause.request_id,
        )  # fmt: skip
        self.ticket_id = ticket_id


def waiting_on(ticket_id: int) -> str:
    """How the ``last_error`` of a write waiting for ``ticket_id`` to be in reach again starts
    (the executor writes the exception's type, then its message)."""
    return f"{TicketOutOfReach.__name__}: ticket {ticket_id} is out of"


T = TypeVar("T")


def on_ticket(adapter: HelpdeskAdapter, ticket_id: int, call: Callable[[], T]) -> T:
    """Make ``call`` (a read or write of ``ticket_id``); a 404 or 403 is re-checked by reading
    the ticket: ``TicketGone`` when it is gone, ``TicketOutOfReach`` when the worker can no
    longer read it."""
    try:
        return call()
    except NotFound as exc:
        try:
            adapter.get_ticket(ticket_id)
        except NotFound:
            raise TicketGone(ticket_id, exc) from exc
        raise
    except Forbidden as exc:
        if isinstance(exc, OutOfReach):
            raise
        try:
            adapter.get_ticket(ticket_id)
        except NotFound:
            raise TicketGone(ticket_id, NotFound(exc.message, status=404)) from exc
        except Forbidden:
            raise TicketOutOfReach(ticket_id, exc) from exc
        raise


class EscalationEvents(Protocol):
    """What follows the create of an escalation ticket, or its loss
    (``escalations.lifecycle``)."""

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

    def escalation_ticket_gone(self, tx: Transaction, escalation_id: int, ticket_id: int) -> None:
        """A write found ``ticket_id`` deleted; if it is the escalation's own ticket, the
        escalation ends (a no-op otherwise, or when it already ended)."""

    def carried_note_refused(
        self, tx: Transaction, escalation_id: int, ticket_id: int, html: str, subject: str | None
    ) -> None:
        """The helpdesk refused for good an update that carried a note on ``ticket_id``
        (nothing of it was applied): the note goes on its own."""


# -- kinds ------------------------------------------------------------------------------------


class CreateEscalation(EffectKind[CreateEscalationPayload]):
    """The escalation ticket. On commit the escalation opens and its follow-ups are requested
    (``EscalationEvents.escalation_created``); refused for good, it ends before it began."""

    name: ClassVar[str] = CREATE_ESCALATION
    payload_type = CreateEscalationPayload

    def __init__(
        self, adapter: HelpdeskAdapter, events: EscalationEvents, store: Store | None = None
    ) -> None:
        self.adapter = adapter
        self.events = events
        self.store = store
        self._first_notes: dict[int, int] = {}
        """Effect id → the id of the first note its create wrote, from ``apply`` to
        ``on_commit`` of the same run; lost in a crash in between (then nothing is recorded,
        and the next poll lists the new ticket)."""

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
        if len(created.article_ids) == 1:  # a new ticket holds its first note, and only it
            self._first_notes[effect.id] = next(iter(created.article_ids))
        return f"{created.id}#{created.number}"

    def find(self, effect: Effect, payload: CreateEscalationPayload) -> str | None:
        matching = None
        if payload.found_by is not None:
            field, value = payload.found_by
            matching = Criterion(field=field, value=value)
        ticket_id = self.adapter.find_ticket_by_marker(
            effect.marker,
            linked_to=payload.parent_id,
            matching=matching,
            since=payload.opened_at - FIND_SLACK,
        )
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
        first_note = self._first_notes.pop(effect.id, None)
        if first_note is not None and self.store is not None:
            self.store.note_articles_known(tx, effect.escalation_id, int(ticket_id), [first_note])

    def on_fail(
        self,
        tx: Transaction,
        effect: Effect,
        payload: CreateEscalationPayload,
        error: str,
        cause: Exception | None,
    ) -> None:
        if effect.escalation_id is not None:
            self.events.creation_refused(tx, effect.escalation_id, error)


P = TypeVar("P", bound=Payload)


class TicketWrite(EffectKind[P]):
    """A write to one existing ticket (``target``). If that ticket was deleted, the write
    fails for good and the escalation it was for learns so."""

    def __init__(self, adapter: HelpdeskAdapter, store: Store, events: EscalationEvents) -> None:
        self.adapter = adapter
        self.store = store
        self.events = events

    def target(self, payload: P) -> int:
        if isinstance(payload, Targeted):
            return resolve(self.store, payload)
        raise NotImplementedError  # a kind whose payload is not ``Targeted`` says where

    def on_ticket(self, payload: P, make: Callable[[int], T]) -> T:
        """``make(ticket_id)``: the write (or look) on the target; a 404 tells whether the
        ticket itself is gone."""
        ticket_id = self.target(payload)
        return on_ticket(self.adapter, ticket_id, lambda: make(ticket_id))

    def note_own_article(
        self, tx: Transaction, effect: Effect, ticket_id: int, remote_id: str | None
    ) -> None:
        """Record the article this write created (its id, as the helpdesk returned it) as
        known for the escalation, so the next poll does not list the ticket again for its
        echo alone (``jobs.sync``)."""
        if effect.escalation_id is not None and remote_id is not None and remote_id.isdigit():
            self.store.note_articles_known(tx, effect.escalation_id, ticket_id, [int(remote_id)])

    def note_own_target_article(
        self, tx: Transaction, effect: Effect, payload: Targeted, remote_id: str | None
    ) -> None:
        """``note_own_article`` on the payload's target, as the store knows it now."""
        if payload.ticket_id is not None:
            self.note_own_article(tx, effect, payload.ticket_id, remote_id)
        elif payload.escalation_ticket_of is not None:
            esc = self.store.get_escalation(payload.escalation_ticket_of)
            if esc is not None and esc.escalation_ticket_id is not None:
                self.note_own_article(tx, effect, esc.escalation_ticket_id, remote_id)

    def on_fail(
        self, tx: Transaction, effect: Effect, payload: P, error: str, cause: Exception | None
    ) -> None:
        if isinstance(cause, TicketGone) and effect.escalation_id is not None:
            self.events.escalation_ticket_gone(tx, effect.escalation_id, cause.ticket_id)


class AddNote(TicketWrite[NotePayload]):
    """An internal note that emails nobody, its marker in the footer."""

    name: ClassVar[str] = NOTE
    payload_type = NotePayload

    def apply(self, effect: Effect, payload: NotePayload) -> str | None:
        draft = ArticleDraft(body=payload.html, subject=payload.subject)
        return str(
            self.on_ticket(
                payload, lambda t: self.adapter.add_article(t, draft, marker=effect.marker)
            )
        )

    def find(self, effect: Effect, payload: NotePayload) -> str | None:
        found = self.on_ticket(
            payload, lambda t: self.adapter.find_article_by_marker(t, effect.marker)
        )
        return None if found is None else str(found)

    def on_commit(
        self, tx: Transaction, effect: Effect, payload: NotePayload, remote_id: str | None
    ) -> None:
        self.note_own_target_article(tx, effect, payload, remote_id)


class CopyArticle(TicketWrite[copies.CopyPayload]):
    """A customer message copied into the escalation ticket (``escalations.copies``)."""

    name: ClassVar[str] = COPY_ARTICLE
    payload_type = copies.CopyPayload

    @classmethod
    def key(cls, purpose: str, scope: str, *parts: object) -> str:
        """``copy:<escalation key>:<source article id>``."""
        if purpose != "copy" or len(parts) != 1:
            raise ValueError("a copy_article key is key('copy', <escalation key>, <article id>)")
        return super().key(purpose, scope, *parts)

    def target(self, payload: copies.CopyPayload) -> int:
        return payload.ticket_id

    def apply(self, effect: Effect, payload: copies.CopyPayload) -> str | None:
        draft = copies.render(
            self.adapter,
            payload,
            skip_unfetchable=effect.attempts + effect.deferrals >= ATTACHMENT_ATTEMPTS,
        )
        return str(
            self.on_ticket(
                payload, lambda t: self.adapter.add_article(t, draft, marker=effect.marker)
            )
        )

    def find(self, effect: Effect, payload: copies.CopyPayload) -> str | None:
        found = self.on_ticket(
            payload, lambda t: self.adapter.find_article_by_marker(t, effect.marker)
        )
        return None if found is None else str(found)

    def on_commit(
        self, tx: Transaction, effect: Effect, payload: copies.CopyPayload, remote_id: str | None
    ) -> None:
        if effect.escalation_id is None or remote_id is None:
            raise EffectError(f"copy_article {effect.id}: no remote id or escalation")
        self.store.set_copy_article_id(tx, effect.escalation_id, payload.source.id, int(remote_id))
        self.note_own_article(tx, effect, payload.ticket_id, remote_id)


class SetTags(TicketWrite[TagsPayload]):
    name: ClassVar[str] = TAGS
    payload_type = TagsPayload

    def apply(self, effect: Effect, payload: TagsPayload) -> str | None:
        present, absent = frozenset(payload.present), frozenset(payload.absent)
        self.on_ticket(payload, lambda t: self.adapter.set_tags(t, present=present, absent=absent))
        return None


def _changes(payload: UpdateTicketPayload, note: ArticleDraft | None = None) -> TicketChanges:
    return TicketChanges(
        owner_id=payload.owner_id,
        state=payload.state,
        group=payload.group,
        title=payload.title,
        pending_until=payload.pending_until,
        fields=dict(payload.fields),
        note=note,
    )


class UpdateTicket(TicketWrite[UpdateTicketPayload]):
    name: ClassVar[str] = UPDATE_TICKET
    payload_type = UpdateTicketPayload

    def apply(self, effect: Effect, payload: UpdateTicketPayload) -> str | None:
        changes = _changes(payload)
        self.on_ticket(payload, lambda t: self.adapter.update_ticket(t, changes))
        return None


class UpdateWithNote(TicketWrite[UpdateWithNotePayload]):
    """A ticket update that creates an internal note in the same request (the helpdesk's
    ``NOTE_ON_UPDATE``: both are applied or neither), the note carrying the marker. Not
    idempotent: after an attempt that may have been sent, the note is looked for by its
    marker, and finding it means the update was applied too.

    The note's id (the remote id) is the one article of the answer's ``article_ids`` the
    escalation did not know before the write; when more than one is new (an article added
    meanwhile, or a ticket whose articles were never listed) it stays unknown (``None``) and
    nothing is recorded as known: the next listing of the ticket accounts for it."""

    name: ClassVar[str] = UPDATE_WITH_NOTE
    payload_type = UpdateWithNotePayload

    def apply(self, effect: Effect, payload: UpdateWithNotePayload) -> str | None:
        changes = _changes(
            payload, ArticleDraft(body=payload.note_html, subject=payload.note_subject)
        )

        def write(ticket_id: int) -> str | None:
            known = (
                self.store.known_articles(effect.escalation_id, ticket_id)
                if effect.escalation_id is not None
                else frozenset()
            )
            ticket = self.adapter.update_ticket(ticket_id, changes, marker=effect.marker)
            new = (ticket.article_ids or frozenset()) - known
            return str(next(iter(new))) if len(new) == 1 else None

        return self.on_ticket(payload, write)

    def find(self, effect: Effect, payload: UpdateWithNotePayload) -> str | None:
        found = self.on_ticket(
            payload, lambda t: self.adapter.find_article_by_marker(t, effect.marker)
        )
        return None if found is None else str(found)

    def on_commit(
        self,
        tx: Transaction,
        effect: Effect,
        payload: UpdateWithNotePayload,
        remote_id: str | None,
    ) -> None:
        self.note_own_target_article(tx, effect, payload, remote_id)

    def on_fail(
        self,
        tx: Transaction,
        effect: Effect,
        payload: UpdateWithNotePayload,
        error: str,
        cause: Exception | None,
    ) -> None:
        """A refusal (a 4xx, or a field the adapter refuses before sending) applied nothing of
        the update, so its note was not made either: it goes on its own, so the agents are
        still told. Not after ``AppliedNotAsAsked`` (applied, the note with it), a lost
        ticket, one out of reach, or too many attempts (each ambiguous one was looked for)."""
        super().on_fail(tx, effect, payload, error, cause)
        refused = isinstance(cause, Rejected | Conflict | Forbidden) and not isinstance(
            cause, AppliedNotAsAsked | OutOfReach
        )
        if refused and effect.escalation_id is not None:
            self.events.carried_note_refused(
                tx, effect.escalation_id, self.target(payload), payload.note_html,
                payload.note_subject,
            )  # fmt: skip


class LinkTickets(TicketWrite[LinkPayload]):
    name: ClassVar[str] = LINK
    payload_type = LinkPayload

    def apply(self, effect: Effect, payload: LinkPayload) -> str | None:
        self.on_ticket(payload, lambda t: self.adapter.link_tickets(payload.parent_id, t))
        return None


class Subscribe(TicketWrite[SubscribePayload]):
    name: ClassVar[str] = SUBSCRIBE
    payload_type = SubscribePayload

    def apply(self, effect: Effect, payload: SubscribePayload) -> str | None:
        try:
            self.on_ticket(payload, lambda t: self.adapter.subscribe(t, payload.user_id))
        except OutOfReach:
            raise  # the ticket moved out of sight: the subscription waits for it
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
        CreateEscalation(adapter, events, store),
        *(
            kind(adapter, store, events)
            for kind in (
                AddNote,
                CopyArticle,
                SetTags,
                UpdateTicket,
                UpdateWithNote,
                LinkTickets,
                Subscribe,
            )
        ),
    ]
