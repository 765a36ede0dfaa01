"""Carrier contact log: the template agents fill in, and the parser of the internal note they
write from it, saying which detail is missing or unreadable.

The template (``carrier_template``) is the heading the helpdesk's field map names
(``mappings/zammad.toml`` ``[carrier] note_heading``) and one ``Label: (hint)`` line per
detail, in this order; the hints come from ``process.toml`` ``[carrier]`` (the stages, and
which details are required)::

    Carrier contact
    Carrier: (the company you called)
    Stage: (agent, team leader or manager)
    Forename: (the first name of the person you spoke to)
    Location: (their site or town)
    User ID: (their user ID, if they gave one)
    Time of call: (e.g. 14:05 or 2.05pm, local time)

An agent replaces each hint with the value. What the parser reads:

- a value that is only a bracket (the hint left as pasted) is no value: the detail is
  missing;
- a hint left after the value (``Stage: team leader (agent, team leader or manager)``) is
  dropped: for the stage and the time of call anything in brackets at the end, for the other
  details only the template's own hint (``Location: Leeds (North)`` keeps its bracket);
- the stage is one of ``[carrier] stages``, in any case, with spaces or ``-`` for ``_``
  (``Team Leader`` is ``team_leader``);
- the time of call is local time in the process time zone: ``14:05``, ``14.05``, ``2.05pm``,
  ``2:05 pm``, ``2pm``, ``2 PM`` (``a.m.``/``p.m.`` too), optionally with the day:
  ``2026-12-01 14:05``, ``14:05 today``, ``yesterday 2pm``. A time alone is the most recent
  such local time that is not in the future when the note was written (allowing
  ``FUTURE_TOLERANCE`` for a clock a few minutes out or a time rounded up): ``23:50`` in a
  note written at 00:10 is the day before.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from escalations.errors import ConfigError
from escalations.models import CarrierContact

if TYPE_CHECKING:
    from escalations.mappings import Mappings

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
"""Labels an agent may write (lowercase) → the detail (``required_details`` name)."""
DETAIL_LABELS = {
    "carrier": "Carrier",
    "stage": "Stage",
    "forename": "Forename",
    "location": "Location",
    "user_id": "User ID",
    "called_at": "Time of call",
}
"""Each detail's label in the template, in the template's order."""
HINTS = {
    "carrier": "the company you called",
    "forename": "the first name of the person you spoke to",
    "location": "their site or town",
    "user_id": "their user ID",
    "called_at": "e.g. 14:05 or 2.05pm, local time",
}
"""What the template says to write for each detail (the stage's hint lists the stages)."""
OPTIONAL_HINT = "if they gave one"
"""Added to the hint of a detail ``required_details`` does not list."""
TIME_ADVICE = "write 14:05 or 2.05pm"
FUTURE_TOLERANCE = timedelta(minutes=15)
"""How far after the note's time a time of call alone may be and still be that day (a clock
a few minutes out, a time rounded up): a parsing allowance, not a business number."""

_TAG_BREAK_RE = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h\d)\s*/?\s*>", re.IGNORECASE)
_TAG_RE = re.compile(r"<[^>]+>")
_LINE_RE = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(.*?)\s*$")
_TRAILING_BRACKET_RE = re.compile(r"^(.*?)\s*\(([^()]*)\)$", re.DOTALL)
_DAY_WORDS = {"today": 0, "yesterday": -1}
_TIME_RE = re.compile(
    r"""^(?:
        (?P<date>\d{4}-\d{2}-\d{2})(?:\s+|T)(?:at\s+)?
        | (?P<before>today|yesterday)\s+(?:at\s+)?
    )?
    (?P<hour>\d{1,2})(?:\s*[:.]\s*(?P<minute>\d{2}))?
    \s*(?P<half>[ap]\.?\s?m\.?)?
    (?:\s+(?P<after>today|yesterday))?$""",
    re.IGNORECASE | re.VERBOSE,
)


def html_to_text(body: str) -> str:
    return html.unescape(_TAG_RE.sub("", _TAG_BREAK_RE.sub("\n", body)))


def normalise_stage(value: str) -> str:
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


def human_stage(stage: str) -> str:
    """A stage as people write it: ``team_leader`` → ``team leader``."""
    return stage.replace("_", " ")


def render_template(heading: str, stages: Sequence[str], required: Sequence[str]) -> str:
    """The lines an agent fills in: the heading, then ``Label: (hint)`` per detail."""
    hints = _hints(stages, required)
    lines = [heading, *(f"{label}: ({hints[d]})" for d, label in DETAIL_LABELS.items())]
    return "\n".join(lines) + "\n"


def carrier_template(mappings: Mappings) -> str:
    """The carrier-contact template of these mappings, as plain lines (the text agents
    insert, e.g. as a text module): the heading from the helpdesk's field map
    (``[carrier] note_heading``), the stages and required details from ``process.toml``.

    Raises:
        ConfigError: the helpdesk's field map names no note heading.
    """
    section = getattr(mappings.helpdesk, "carrier", None)
    heading = getattr(section, "note_heading", None)
    if not isinstance(heading, str):
        raise ConfigError(f"{mappings.helpdesk_file}: carrier.note_heading: missing")
    carrier = mappings.profile.carrier
    return render_template(heading, carrier.stages, carrier.required_details)


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
    now: datetime | None = None,
) -> CarrierContact | None:
    """Parse a carrier-contact note, or return ``None`` when the body is not one (its first
    line is not the heading).

    Args:
        body: the note, HTML or plain text.
        heading: the first line a carrier-contact note has (case and a ``:`` ignored).
        written_at: when the note was written (the helpdesk's time stamp).
        tz: the process time zone, in which times of call are written.
        stages: the carrier's stages (``process.toml [carrier] stages``).
        required: the details a complete note gives.
        escalation_id: stored with the contact.
        source_article_id: stored with the contact.
        now: the injected clock's reading; a note stamped later (the helpdesk's clock is
            ahead) counts as written now. A time of call alone is the most recent such local
            time not after the note was written (give or take ``FUTURE_TOLERANCE``).

    Returns:
        The contact, with ``missing`` (the labels of required details not given) and
        ``problems`` (one ``Label: what is wrong`` per detail given but unreadable).
    """
    lines = [line.strip() for line in html_to_text(body).splitlines() if line.strip()]
    if not lines or lines[0].rstrip(":").strip().lower() != heading.strip().lower():
        return None
    hints = _hints(stages, required)
    values: dict[str, str] = {}
    for line in lines[1:]:
        match = _LINE_RE.match(line)
        if not match:
            continue
        detail = LABELS.get(" ".join(match.group(1).lower().split()))
        value = _without_hint(detail, match.group(2), hints) if detail else ""
        if detail and value:
            values.setdefault(detail, value)
    problems: list[str] = []
    stage = None
    if "stage" in values:
        stage = _match_stage(values["stage"], stages)
        if stage is None:
            shown = ", ".join(human_stage(s) for s in stages)
            problems.append(f"{DETAIL_LABELS['stage']}: '{values['stage']}' is not one of {shown}")
    called_at = None
    if "called_at" in values:
        reference = min(written_at, now) if now is not None else written_at
        called_at = parse_local_time(values["called_at"], reference, tz)
        if called_at is None:
            problems.append(
                f"{DETAIL_LABELS['called_at']}: '{values['called_at']}' is not a time "
                f"({TIME_ADVICE})"
            )
    missing = tuple(DETAIL_LABELS[k] for k in DETAIL_LABELS if k in required and k not in values)
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


def parse_local_time(text: str, written_at: datetime, tz: ZoneInfo) -> datetime | None:
    """A time of call (the forms in the module docstring) as an aware UTC instant, or
    ``None`` when it is not one. ``written_at`` is when the note was written: the day of
    ``today``/``yesterday``, and the latest instant a time alone may name (plus
    ``FUTURE_TOLERANCE``)."""
    match = _TIME_RE.match(" ".join(text.split()))
    if not match:
        return None
    day_text, before, after = match.group("date", "before", "after")
    clock = _time_of_day(match.group("hour"), match.group("minute"), match.group("half"))
    if clock is None or (day_text and after) or (before and after):
        return None
    written_day = written_at.astimezone(tz).date()
    if day_text:
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            return None
        return datetime.combine(day, clock, tzinfo=tz).astimezone(UTC)
    if before or after:
        day = written_day + timedelta(days=_DAY_WORDS[(before or after).lower()])
        return datetime.combine(day, clock, tzinfo=tz).astimezone(UTC)
    latest = written_at + FUTURE_TOLERANCE
    for offset in (1, 0):  # tomorrow only within the tolerance (a note just before midnight)
        instant = datetime.combine(written_day + timedelta(days=offset), clock, tzinfo=tz)
        if instant.astimezone(UTC) <= latest:
            return instant.astimezone(UTC)
    yesterday = written_day - timedelta(days=1)
    return datetime.combine(yesterday, clock, tzinfo=tz).astimezone(UTC)


def _time_of_day(hour_text: str, minute_text: str | None, half: str | None) -> time | None:
    hour, minute = int(hour_text), int(minute_text or 0)
    if half is None:
        if minute_text is None:
            return None  # "14" alone: not a time anyone means
        if hour > 23:
            return None
    else:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half.lower().startswith("p") else 0)
    if minute > 59:
        return None
    return time(hour, minute)


def _hints(stages: Sequence[str], required: Sequence[str]) -> dict[str, str]:
    names = [human_stage(s) for s in stages]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    base = {**HINTS, "stage": listed}
    return {d: base[d] if d in required else f"{base[d]}, {OPTIONAL_HINT}" for d in DETAIL_LABELS}


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def _without_hint(detail: str, value: str, hints: dict[str, str]) -> str:
    """The value with the template's hint taken off (``""`` for the hint alone)."""
    value = value.strip()
    match = _TRAILING_BRACKET_RE.match(value)
    if match is None:
        return value
    before, inside = match.group(1).strip(), match.group(2)
    if not before:
        return ""  # the hint as pasted, or nothing but a bracket: no value
    if detail in ("stage", "called_at") or _same_text(inside, hints[detail]):
        return before
    return value


def _match_stage(value: str, stages: Sequence[str]) -> str | None:
    wanted = normalise_stage(value)
    return next((s for s in stages if normalise_stage(s) == wanted), None)
