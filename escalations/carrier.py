"""Carrier contact log: parse the internal note agents write from the "Carrier contact" text
module, and say which required detail is missing.

The note looks like this (one ``Label: value`` per line, under the heading named in
the helpdesk's field map, e.g. ``mappings/zammad.toml`` ``[carrier] note_heading``)::

    Carrier contact
    Carrier: BT
    Stage: team leader
    Forename: Dave
    Location: Glasgow
    User ID: BT-4411
    Time of call: 14:05

``Time of call`` is local time (the process time zone): ``HH:MM`` means on the day the note
was written, ``YYYY-MM-DD HH:MM`` names the day.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from escalations.models import CarrierContact

LABELS = {
    "carrier": "carrier",
    "stage": "stage",
    "forename": "forename",
    "first name": "forename",
    "location": "location",
    "user id": "user_id",
    "userid": "user_id",
    "user identity": "user_id",
    "time of call": "called_at",
    "time": "called_at",
    "called at": "called_at",
}
DETAIL_LABELS = {
    "carrier": "Carrier",
    "stage": "Stage",
    "forename": "Forename",
    "location": "Location",
    "user_id": "User ID",
    "called_at": "Time of call",
}

_TAG_BREAK_RE = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h\d)\s*/?\s*>", re.IGNORECASE)
_TAG_RE = re.compile(r"<[^>]+>")
_LINE_RE = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(.*?)\s*$")
_TIME_RE = re.compile(r"^(?:(\d{4}-\d{2}-\d{2})[ T])?(\d{1,2}):(\d{2})$")


def html_to_text(body: str) -> str:
    return html.unescape(_TAG_RE.sub("", _TAG_BREAK_RE.sub("\n", body)))


def normalise_stage(value: str) -> str:
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


def parse_carrier_note(
    body: str,
    *,
    heading: str,
    written_at: datetime,
    tz: ZoneInfo,
    stages: tuple[str, ...],
    required: tuple[str, ...],
    escalation_id: int = 0,
    source_article_id: int = 0,
) -> CarrierContact | None:
    """Parse a carrier-contact note, or return ``None`` when the body is not one."""
    lines = [line.strip() for line in html_to_text(body).splitlines() if line.strip()]
    if not lines or lines[0].rstrip(":").strip().lower() != heading.strip().lower():
        return None
    values: dict[str, str] = {}
    problems: list[str] = []
    for line in lines[1:]:
        match = _LINE_RE.match(line)
        if not match:
            continue
        label = LABELS.get(match.group(1).strip().lower())
        if label and match.group(2):
            values.setdefault(label, match.group(2))
    stage = values.get("stage")
    if stage is not None:
        stage = normalise_stage(stage)
        if stage not in stages:
            problems.append(f"stage '{values['stage']}' is not one of {', '.join(stages)}")
    called_at = None
    if "called_at" in values:
        called_at = _parse_local_time(values["called_at"], written_at, tz)
        if called_at is None:
            problems.append(
                f"time of call '{values['called_at']}' is not HH:MM or YYYY-MM-DD HH:MM"
            )
    missing = tuple(DETAIL_LABELS[k] for k in required if not values.get(k))
    return CarrierContact(
        escalation_id=escalation_id,
        source_article_id=source_article_id,
        carrier=values.get("carrier"),
        stage=stage,
        forename=values.get("forename"),
        location=values.get("location"),
        user_id=values.get("user_id"),
        called_at=called_at,
        missing=missing,
        problems=tuple(problems),
    )


def _parse_local_time(text: str, written_at: datetime, tz: ZoneInfo) -> datetime | None:
    match = _TIME_RE.match(text.strip())
    if not match:
        return None
    day_text, hour, minute = match.groups()
    try:
        day = date.fromisoformat(day_text) if day_text else written_at.astimezone(tz).date()
        local = datetime.combine(day, time(int(hour), int(minute)), tzinfo=tz)
    except ValueError:
        return None
    return local.astimezone(UTC)
