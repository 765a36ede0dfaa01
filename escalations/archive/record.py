"""``record.json``: the machine-readable record of an archived escalation.

Schema ``helpdesk-escalations/archive-record``, version 1 (documented in
``docs/archive.md``): ``escalation`` (key, tickets, customer, segment, reason, the level
reached, owner, every stage's time, the RFO), ``levels`` (each change), ``carrier_contacts``,
``duties`` (done and missed, with their evidence), ``parkings`` and ``articles`` (every
article of the escalation ticket, oldest first: who, when, kind, subject, headers, the text,
and its attachments by their file name in the archive). Times are ISO 8601 in UTC."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.base import Article
from escalations.carrier import html_to_text
from escalations.models import CarrierContact, Duty, Escalation, LevelChange, ParkingPeriod

SCHEMA = "helpdesk-escalations/archive-record"
VERSION = 1


@dataclass(frozen=True)
class ArchivedFile:
    """An attachment as kept in the archive."""

    article_id: int
    name: str
    """Its file name in ``attachments/`` (made safe, unique in the archive)."""
    original_name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class ArchiveInput:
    """Everything the hard copy shows, read before it is written."""

    escalation: Escalation
    customer: str
    owner_id: int | None
    """The escalation ticket's owner when it was archived (the helpdesk's word)."""
    owner: str
    reason_label: str
    segment_label: str
    rfo: str | None
    articles: Sequence[Article]
    files: Sequence[ArchivedFile]
    levels: Sequence[LevelChange]
    carrier_contacts: Sequence[CarrierContact]
    duties: Sequence[Duty]
    parkings: Sequence[ParkingPeriod]
    archived_at: datetime


def build(data: ArchiveInput) -> dict[str, Any]:
    esc = data.escalation
    files_of: dict[int, list[ArchivedFile]] = {}
    for f in data.files:
        files_of.setdefault(f.article_id, []).append(f)
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "archived_at": _json(data.archived_at),
        "escalation": {
            "key": esc.key,
            "original_ticket": {"id": esc.original_ticket_id, "number": esc.original_ticket_number},
            "escalation_ticket": {
                "id": esc.escalation_ticket_id,
                "number": esc.escalation_ticket_number,
            },
            "customer": {"id": esc.customer_id, "name": data.customer},
            "segment": esc.segment,
            "segment_label": data.segment_label,
            "reason": esc.reason,
            "reason_label": data.reason_label,
            "level": esc.level,
            "owner": {"id": data.owner_id, "name": data.owner},
            "rfo": data.rfo,
            **{
                stage: _json(getattr(esc, stage))
                for stage in (
                    "flagged_at",
                    "opened_at",
                    "callback_at",
                    "resolved_at",
                    "parked_at",
                    "confirmed_at",
                    "closed_at",
                )
            },
        },
        "levels": [_plain(c) for c in data.levels],
        "carrier_contacts": [_plain(c) for c in data.carrier_contacts],
        "duties": [_plain(d) for d in data.duties],
        "parkings": [_plain(p) for p in data.parkings],
        "articles": [
            {
                "id": a.id,
                "ticket": _ticket_number(esc, a.ticket_id),
                "created_at": _json(a.created_at),
                "kind": a.kind.value,
                "sender": a.sender.value,
                "internal": a.internal,
                "subject": a.subject,
                "from": a.from_,
                "to": a.to,
                "cc": a.cc,
                "text": article_text(a),
                "attachments": [_plain(f) for f in files_of.get(a.id, [])],
            }
            for a in data.articles
        ],
    }


def _ticket_number(esc: Escalation, ticket_id: int) -> str | None:
    if ticket_id == esc.original_ticket_id:
        return esc.original_ticket_number
    return esc.escalation_ticket_number


def article_text(article: Article) -> str:
    body = article.body or ""
    text = html_to_text(body) if article.content_type == "text/html" else body
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _plain(item: Any) -> dict[str, Any]:
    return {k: _json(v) for k, v in dataclasses.asdict(item).items()}


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    return value
