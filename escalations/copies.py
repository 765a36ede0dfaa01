"""How a customer's message becomes an internal note on the escalation ticket: what is captured
when the copy is requested (``capture``, the ``copy_article`` effect's payload) and how the note
is built when it is written (``render``): a header with the original sender, recipients, date
and subject, the sanitised body (cut to the limit, the full body attached), and the attachments
re-uploaded under a safe name (``filenames.safe_filename``) — or, past the size cap, listed with
their size and sha256."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from pydantic import Field

from connector.base import (
    Article,
    ArticleDraft,
    AttachmentRef,
    AttachmentUpload,
    HelpdeskAdapter,
)
from connector.errors import (
    HelpdeskError,
    Maintenance,
    RateLimited,
    TooLarge,
    TransientError,
    Unauthorized,
)
from escalations import notes
from escalations.effects.base import Payload
from escalations.filenames import safe_filename
from escalations.sanitize import body_as_safe_html

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BODY_FILE = "original-body.html"
NOTE_ROOM = 2000
"""Characters kept free in the note for the lines around the body and the marker footer."""


class CopyLimits(Payload):
    attachment_max_bytes: int
    body_max_chars: int


class CopySource(Payload):
    """The customer's message as it was when the copy was requested."""

    id: int
    ticket_id: int
    number: str
    kind: str
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    cc: str | None = None
    subject: str | None = None
    created_at: datetime | None = None
    content_type: str | None = None
    body: str | None = None


class CopyAttachment(Payload):
    ticket_id: int
    article_id: int
    id: int
    filename: str
    size: int
    content_type: str

    def ref(self) -> AttachmentRef:
        return AttachmentRef(
            ticket_id=self.ticket_id,
            article_id=self.article_id,
            id=self.id,
            filename=self.filename,
            size=self.size,
            content_type=self.content_type,
        )


class CopyPayload(Payload):
    """The ``copy_article`` payload (version 1: the shape stored before payloads were typed)."""

    ticket_id: int
    """The escalation ticket."""
    tz: str
    limits: CopyLimits
    source: CopySource
    attachments: tuple[CopyAttachment, ...] = ()


def capture(
    article: Article,
    *,
    escalation_ticket_id: int,
    source_number: str,
    attachment_max_bytes: int,
    body_max_chars: int,
    tz: ZoneInfo,
) -> CopyPayload:
    """What a ``copy_article`` intent keeps of a customer article."""
    return CopyPayload(
        ticket_id=escalation_ticket_id,
        tz=tz.key,
        limits=CopyLimits(attachment_max_bytes=attachment_max_bytes, body_max_chars=body_max_chars),
        source=CopySource(
            id=article.id,
            ticket_id=article.ticket_id,
            number=source_number,
            kind=article.kind.value,
            from_=article.from_,
            to=article.to,
            cc=article.cc,
            subject=article.subject,
            created_at=article.created_at,
            content_type=article.content_type,
            body=article.body,
        ),
        attachments=tuple(
            CopyAttachment(
                ticket_id=a.ticket_id,
                article_id=a.article_id,
                id=a.id,
                filename=a.filename,
                size=a.size,
                content_type=a.content_type,
            )
            for a in article.attachments
        ),
    )


def render(
    adapter: HelpdeskAdapter, payload: CopyPayload, *, skip_unfetchable: bool = False
) -> ArticleDraft:
    """The internal note for a copied customer article, attachments fetched through
    ``adapter``. An attachment the helpdesk refuses to hand over (gone, forbidden) is named
    in the note instead of copied; one that keeps failing for a transient reason is too once
    ``skip_unfetchable`` is set (after a few attempts), so one bad file never holds up the
    email or the copies queued after it. A busy helpdesk (throttling, maintenance) is waited
    for: nothing is wrong with the file."""
    source = payload.source
    tz = ZoneInfo(payload.tz)
    header = notes.CopiedEmail(
        source_number=source.number,
        from_=source.from_,
        to=source.to,
        cc=source.cc,
        sent_at=source.created_at or EPOCH,
        subject=source.subject,
        kind=source.kind,
    ).header_html(tz)
    body = body_as_safe_html(source.body or "", source.content_type or "text/plain")
    uploads: list[AttachmentUpload] = []
    withheld: list[str] = []
    budget = payload.limits.body_max_chars - len(header) - NOTE_ROOM
    if len(body) > budget:
        uploads.append(AttachmentUpload(BODY_FILE, "text/html", body.encode("utf-8")))
        body = body[: max(budget, 0)] + notes.body_truncated_line(max(budget, 0), len(body))
    cap = payload.limits.attachment_max_bytes
    for attachment in payload.attachments:
        ref = attachment.ref()
        # the customer's name, sanitised here rather than at capture so that copies queued
        # by older versions (raw names in their payload) get a safe name too
        filename = safe_filename(ref.filename)
        try:
            if ref.size <= cap:
                try:
                    data = adapter.fetch_attachment(ref, max_bytes=cap)
                except TooLarge:  # the declared size was wrong
                    pass
                else:
                    uploads.append(AttachmentUpload(filename, ref.content_type, data))
                    continue
            size, digest = adapter.digest_attachment(ref)
            withheld.append(notes.attachment_withheld_line(filename, size, digest, cap))
        except (Unauthorized, RateLimited, Maintenance):
            raise
        except TransientError as exc:
            if not skip_unfetchable:
                raise
            withheld.append(notes.attachment_missing_line(filename, ref.size, exc.message))
        except HelpdeskError as exc:
            withheld.append(notes.attachment_missing_line(filename, ref.size, exc.message))
    tail = f"<p><b>Attachments not copied:</b></p><ul>{''.join(withheld)}</ul>" if withheld else ""
    subject = f"Customer {source.kind}: {source.subject or '(no subject)'}"
    return ArticleDraft(
        body=header + body + tail, subject=subject[:250], attachments=tuple(uploads)
    )
