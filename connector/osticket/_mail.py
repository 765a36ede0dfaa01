"""The RFC 822 message that copies a draft into an osTicket ticket through
``POST /api/tickets.email`` (``shared/reference/osticket.md`` §1.5, §5.2).

osTicket threads it onto the ticket by the ``[#<number>]`` subject token because the sender is
the ticket's owner, and ignores a second message with a ``Message-ID`` it has stored: the id is
made from the write's marker, so a replay after a crash writes nothing (the idempotency key
osTicket's API lacks). ``To`` is the owner too: an address osTicket does not know would be
added as a collaborator, and a system mailbox would refer the ticket to its department.
``Auto-Submitted: auto-generated`` makes osTicket treat it as an automatic message
(``TicketFilter::isAutoReply``): ``Ticket::postMessage`` then sends no auto-response, no
new-message alert and no collaborator notice, and does not reopen a closed ticket.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from connector.base import ArticleDraft, Marker

MESSAGE_ID_DOMAIN = "escalation-worker.invalid"


def message_id(marker: Marker) -> str:
    """The ``Message-ID`` a write with ``marker`` carries (with the angle brackets osTicket
    stores in ``ost_thread_entry_email.mid``)."""
    return f"<{marker.value}@{MESSAGE_ID_DOMAIN}>"


def copy_message(
    draft: ArticleDraft,
    *,
    marker: Marker,
    number: str,
    owner_name: str,
    owner_email: str,
    at: datetime,
) -> bytes:
    """The message as bytes (CRLF line ends), the marker's footer under the body."""
    msg = EmailMessage(policy=SMTP)
    sender = formataddr((owner_name, owner_email))
    msg["From"] = sender
    msg["To"] = sender
    subject = (draft.subject or "Copy").replace("\r", " ").replace("\n", " ")
    msg["Subject"] = f"[#{number}] {subject}"
    msg["Date"] = format_datetime(at)
    msg["Message-ID"] = message_id(marker)
    msg["Auto-Submitted"] = "auto-generated"
    footer = marker.footer
    if draft.content_type == "text/html":
        msg.set_content(f"{draft.body}<p>{footer}</p>", subtype="html", charset="utf-8")
    else:
        msg.set_content(f"{draft.body}\n\n{footer}\n", charset="utf-8")
    for upload in draft.attachments:
        maintype, _, subtype = upload.content_type.partition("/")
        if not subtype:
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(
            upload.data, maintype=maintype, subtype=subtype, filename=upload.filename
        )
    return msg.as_bytes()
