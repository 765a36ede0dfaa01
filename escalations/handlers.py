"""Effect handlers: how each kind of recorded intent becomes exactly one helpdesk write, and
how an earlier write of it is found again by its marker (``RELIABILITY.md`` §B2).

=====================  =================================  ==============================
kind                   write                              look-before-write
=====================  =================================  ==============================
create_escalation      create_ticket (atomic: note,       find_ticket_by_marker among the
                       tags, link, mentions)              original ticket's links
note                   add_article (internal note)        find_article_by_marker
copy_article           add_article (+ attachments)        find_article_by_marker
tags                   set_tags (read, then only diff)    none: idempotent
update_ticket          update_ticket (owner/state/fields) none: idempotent
subscribe              subscribe (read first)             none: idempotent
=====================  =================================  ==============================
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from connector.base import (
    ArticleDraft,
    AttachmentRef,
    AttachmentUpload,
    HelpdeskAdapter,
    TicketChanges,
    TicketDraft,
)
from connector.errors import AuthError, Rejected, TooLarge
from escalations import notes, workflow
from escalations.models import CopiedArticle, Effect, State
from escalations.sanitize import body_as_safe_html

if TYPE_CHECKING:
    from escalations.effects import Effects, Intent
    from escalations.store.base import Store, Transaction

log = logging.getLogger(__name__)

CREATE_ESCALATION = "create_escalation"
NOTE = "note"
COPY_ARTICLE = "copy_article"
TAGS = "tags"
UPDATE_TICKET = "update_ticket"
SUBSCRIBE = "subscribe"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# -- create the escalation ticket ------------------------------------------------------------


class CreateEscalation:
    """Payload: the ticket draft fields plus ``note_html``. On commit the escalation gets its
    ticket and is opened, its history scan is requested, and the follow-up writes on the
    original ticket are requested (``followups``) — all in the same transaction."""

    def __init__(self, store: Store, followups: Followups) -> None:
        self.store = store
        self.followups = followups

    def apply(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        p = effect.payload
        draft = TicketDraft(
            title=p["title"],
            group=p["group"],
            customer_id=p["customer_id"],
            organization_id=p.get("organization_id"),
            state=p.get("state"),
            owner_id=p.get("owner_id"),
            tags=frozenset(p.get("tags", ())),
            fields=dict(p.get("fields", {})),
            parent_id=p["parent_id"],
            mention_user_ids=tuple(p.get("mention_user_ids", ())),
            first_note=ArticleDraft(body=p["note_html"], subject=p.get("note_subject")),
        )
        created = adapter.create_ticket(draft, marker=effect.marker)
        return f"{created.id}#{created.number}"

    def find(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        ticket_id = adapter.find_ticket_by_marker(
            effect.marker, linked_to=effect.payload["parent_id"]
        )
        if ticket_id is None:
            return None
        return f"{ticket_id}#{adapter.get_ticket(ticket_id).number}"

    def on_fail(self, tx: Transaction, effect: Effect, error: str) -> None:
        """The helpdesk refused the escalation ticket for good: the escalation ends before it
        began (so a new flag raises a new one), and the agent is told on the original."""
        assert effect.escalation_id is not None
        esc = self.store.get_escalation(effect.escalation_id)
        if esc is None or esc.state is not State.FLAGGED:
            return
        abandoned = workflow.apply(esc, "abandon", esc.updated_at)
        self.store.update_escalation(tx, abandoned)
        self.followups.after_failure(tx, abandoned, error)
        log.error(
            "escalation.not_created esc=%s original=%s error=%s",
            esc.key,
            esc.original_ticket_id,
            error,
        )

    def on_commit(self, tx: Transaction, effect: Effect, remote_id: str | None) -> None:
        assert remote_id is not None
        assert effect.escalation_id is not None
        ticket_id, number = remote_id.split("#", 1)
        esc = self.store.get_escalation(effect.escalation_id)
        assert esc is not None
        opened = workflow.apply(
            esc,
            "open",
            _when(effect.payload["opened_at"]) or esc.updated_at,
            escalation_ticket_id=int(ticket_id),
            escalation_ticket_number=number,
        )
        self.store.update_escalation(tx, opened)
        self.store.request_scan(
            tx,
            opened.id,
            opened.original_ticket_id,
            effect.payload["original_number"],
            opened.updated_at,
        )
        self.followups.after_create(tx, opened)
        log.info(
            "escalation.created esc=%s ticket=%s number=%s original=%s level=%s",
            opened.key,
            ticket_id,
            number,
            opened.original_ticket_id,
            opened.level,
        )


class Followups:
    """Requests the writes that follow the creation of an escalation ticket — or its failure.
    Bound to the ``Effects`` executor after both exist (they need each other)."""

    def __init__(self, build: Any, build_failure: Any = None) -> None:
        self._build = build  # callable(esc) -> list[Intent]
        self._build_failure = build_failure  # callable(esc, error) -> list[Intent]
        self.effects: Effects | None = None

    def after_create(self, tx: Transaction, esc: Any) -> None:
        self._request(tx, self._build(esc))

    def after_failure(self, tx: Transaction, esc: Any, error: str) -> None:
        if self._build_failure is not None:
            self._request(tx, self._build_failure(esc, error))

    def _request(self, tx: Transaction, intents: list[Intent]) -> None:
        assert self.effects is not None, "Followups not bound to an executor"
        for intent in intents:
            self.effects.request(tx, intent)


# -- notes and copies -------------------------------------------------------------------------


class AddNote:
    """Payload: ``ticket_id``, ``html``, optional ``subject``."""

    def apply(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        p = effect.payload
        draft = ArticleDraft(body=p["html"], subject=p.get("subject"))
        return str(adapter.add_article(p["ticket_id"], draft, marker=effect.marker))

    def find(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        found = adapter.find_article_by_marker(effect.payload["ticket_id"], effect.marker)
        return None if found is None else str(found)


class CopyArticle:
    """Payload: ``ticket_id`` (the escalation ticket), ``source`` (the customer article as
    captured when the copy was requested), ``attachments`` (refs), ``limits``, ``tz``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def apply(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        draft = render_copy(adapter, effect.payload)
        return str(adapter.add_article(effect.payload["ticket_id"], draft, marker=effect.marker))

    def find(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        found = adapter.find_article_by_marker(effect.payload["ticket_id"], effect.marker)
        return None if found is None else str(found)

    def on_commit(self, tx: Transaction, effect: Effect, remote_id: str | None) -> None:
        assert effect.escalation_id is not None
        assert remote_id is not None
        source = effect.payload["source"]
        self.store.set_copy_article_id(tx, effect.escalation_id, source["id"], int(remote_id))


def copy_payload(
    *,
    escalation_ticket_id: int,
    source_number: str,
    article: Any,
    attachment_max_bytes: int,
    body_max_chars: int,
    tz: ZoneInfo,
) -> dict[str, Any]:
    """Capture a customer article for a ``copy_article`` intent."""
    return {
        "ticket_id": escalation_ticket_id,
        "tz": tz.key,
        "limits": {"attachment_max_bytes": attachment_max_bytes, "body_max_chars": body_max_chars},
        "source": {
            "id": article.id,
            "ticket_id": article.ticket_id,
            "number": source_number,
            "kind": article.kind.value,
            "from": article.from_,
            "to": article.to,
            "cc": article.cc,
            "subject": article.subject,
            "created_at": _iso(article.created_at),
            "content_type": article.content_type,
            "body": article.body,
        },
        "attachments": [
            {
                "ticket_id": a.ticket_id,
                "article_id": a.article_id,
                "id": a.id,
                "filename": a.filename,
                "size": a.size,
                "content_type": a.content_type,
            }
            for a in article.attachments
        ],
    }


def render_copy(adapter: HelpdeskAdapter, payload: Mapping[str, Any]) -> ArticleDraft:
    """Build the internal note for a copied customer article: a header block with the original
    sender, recipients, date and subject, the sanitised body (cut to the limit, the full body
    attached), and the attachments re-uploaded — or, past the size cap, listed with their
    size and sha256."""
    source = payload["source"]
    tz = ZoneInfo(payload["tz"])
    limits = payload["limits"]
    header = notes.CopiedEmail(
        source_number=source["number"],
        from_=source["from"],
        to=source["to"],
        cc=source["cc"],
        sent_at=_when(source["created_at"]) or EPOCH,
        subject=source["subject"],
        kind=source["kind"],
    ).header_html(tz)
    body = body_as_safe_html(source["body"] or "", source["content_type"] or "text/plain")
    uploads: list[AttachmentUpload] = []
    withheld: list[str] = []
    budget = limits["body_max_chars"] - len(header) - 2000  # room for notes and the footer
    if len(body) > budget:
        uploads.append(AttachmentUpload("original-body.html", "text/html", body.encode("utf-8")))
        body = body[: max(budget, 0)] + notes.body_truncated_line(max(budget, 0), len(body))
    cap = int(limits["attachment_max_bytes"])
    for raw in payload["attachments"]:
        ref = AttachmentRef(**raw)
        if ref.size > cap:
            size, digest = _digest(adapter, ref)
            withheld.append(notes.attachment_withheld_line(ref.filename, size, digest, cap))
            continue
        try:
            data = adapter.fetch_attachment(ref, max_bytes=cap)
        except TooLarge:  # the declared size was wrong
            size, digest = _digest(adapter, ref)
            withheld.append(notes.attachment_withheld_line(ref.filename, size, digest, cap))
            continue
        uploads.append(AttachmentUpload(ref.filename, ref.content_type, data))
    tail = f"<p><b>Attachments not copied:</b></p><ul>{''.join(withheld)}</ul>" if withheld else ""
    subject = f"Customer {source['kind']}: {source['subject'] or '(no subject)'}"
    return ArticleDraft(
        body=header + body + tail, subject=subject[:250], attachments=tuple(uploads)
    )


def _digest(adapter: HelpdeskAdapter, ref: AttachmentRef) -> tuple[int, str]:
    """Size and sha256 of an attachment too large to copy, streamed without keeping it."""
    return adapter.digest_attachment(ref)


# -- idempotent writes --------------------------------------------------------------------------


class SetTags:
    """Payload: ``ticket_id``, ``present``, ``absent``."""

    def apply(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        p = effect.payload
        adapter.set_tags(
            p["ticket_id"],
            present=frozenset(p.get("present", ())),
            absent=frozenset(p.get("absent", ())),
        )
        return None

    def find(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        return None


class UpdateTicket:
    """Payload: ``ticket_id`` and any of ``owner_id``, ``state``, ``group``, ``title``,
    ``fields``."""

    def apply(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        p = effect.payload
        changes = TicketChanges(
            owner_id=p.get("owner_id"),
            state=p.get("state"),
            group=p.get("group"),
            title=p.get("title"),
            pending_until=_when(p.get("pending_until")),
            fields=dict(p.get("fields", {})),
        )
        adapter.update_ticket(p["ticket_id"], changes)
        return None

    def find(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        return None


class Subscribe:
    """Payload: ``ticket_id``, ``user_id``."""

    def apply(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        try:
            adapter.subscribe(effect.payload["ticket_id"], effect.payload["user_id"])
        except AuthError as exc:
            # Subscribing someone else needs admin.user; a refusal here is about this one
            # write, not the token as a whole, so it must not stop the worker.
            raise Rejected(f"subscribe refused: {exc.message}", status=exc.status) from None
        return None

    def find(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        return None


def copied_row(esc_id: int, article: Any, at: datetime) -> CopiedArticle:
    return CopiedArticle(
        escalation_id=esc_id,
        source_ticket_id=article.ticket_id,
        source_article_id=article.id,
        copy_article_id=None,
        copied_at=at,
    )


def build_handlers(store: Store, followups: Followups) -> dict[str, Any]:
    return {
        CREATE_ESCALATION: CreateEscalation(store, followups),
        NOTE: AddNote(),
        COPY_ARTICLE: CopyArticle(store),
        TAGS: SetTags(),
        UPDATE_TICKET: UpdateTicket(),
        SUBSCRIBE: Subscribe(),
    }


__all__ = [
    "COPY_ARTICLE",
    "CREATE_ESCALATION",
    "NOTE",
    "SUBSCRIBE",
    "TAGS",
    "UPDATE_TICKET",
    "Followups",
    "build_handlers",
    "copy_payload",
    "render_copy",
]
