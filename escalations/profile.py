"""The process profile: the admin-edited ``mappings/process.toml``, validated.

The profile holds every business number of the escalation process (levels and their owners,
roles, reasons, customer segments and their communication plans, business hours, parking and
retention). Code reads them from here and never hard-codes them (STYLE rule 17).

Checks on a single value (types, ranges, formats) are field validators. Checks that relate
several parts of the profile (level numbering, references to roles and segments) are in
:func:`consistency_issues`, which returns every issue with its location so that the mapping
loader can name file, line and key for each one. Constructing a :class:`ProcessProfile` directly
runs the same checks and raises on the first batch of issues.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import date, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Owner rules that are not role keys. These are words of the file format, not business numbers.
OWNER_FLAGGING_AGENT = "flagging_agent"
OWNER_UNCHANGED = "unchanged"
OWNER_RULES = (OWNER_FLAGGING_AGENT, OWNER_UNCHANGED)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ReasonCategory = Literal["crisis", "impact", "repair"]
UpdateChannel = Literal["call", "ticket"]
CarrierDetail = Literal["carrier", "stage", "forename", "location", "user_id", "called_at"]

# An issue found by a consistency check: (location as a pydantic-style loc tuple, message).
Loc = tuple[str | int, ...]
Issue = tuple[Loc, str]

# Context key under which the mapping loader collects consistency issues instead of raising.
ISSUES_CONTEXT_KEY = "consistency_issues"

_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_HHMM_RE = re.compile(r"(\d{2}):(\d{2})")


def _parse_hhmm(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # the strict ``time`` check rejects it with a type error
    match = _HHMM_RE.fullmatch(value)
    if not match:
        raise ValueError(f'expected a time as "HH:MM" (24-hour clock), got {value!r}')
    hours, minutes = int(match[1]), int(match[2])
    if hours > 23 or minutes > 59:
        raise ValueError(f"{value!r} is not a time of day (00:00 to 23:59)")
    return time(hours, minutes)


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name (lowercase letters, digits and '_', "
            "starting with a letter)"
        )
    return value


def _check_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _check_tag(value: str) -> str:
    if not value.strip():
        raise ValueError("a tag must not be empty")
    if value != value.strip():
        raise ValueError(f"tag {value!r} has leading or trailing spaces")
    bad = sorted({c for c in value if c in ",*"})
    if bad:
        raise ValueError(f"tag {value!r} contains {', '.join(repr(c) for c in bad)} (not allowed)")
    return value


def _check_unique(values: Sequence[Any]) -> Sequence[Any]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{_show(value)} is listed twice")
        seen.add(value)
    return values


def _show(value: Any) -> str:
    return repr(value.isoformat()) if isinstance(value, date | time) else repr(value)


ClockTime = Annotated[time, BeforeValidator(_parse_hhmm)]
"""A local time of day written as ``"HH:MM"``."""
Name = Annotated[str, AfterValidator(_check_name)]
"""A machine name: lowercase letters, digits and ``_``, starting with a letter."""
Text = Annotated[str, AfterValidator(_check_text)]
"""Human-readable text that must not be empty."""
TagName = Annotated[str, AfterValidator(_check_tag)]
"""A Zammad tag: non-empty, no surrounding spaces, no ``,`` or ``*``."""
_ARRAY = Field(strict=False)
"""Marks a tuple field so that a TOML array (a Python list) is accepted; items stay strict."""
LenientDate = Annotated[date, Field(strict=False)]
"""A date: a bare TOML date (``2026-12-25``) or a quoted ISO date (``"2026-12-25"``)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class ProcessSection(_Model):
    """``[process]``: the process as a whole."""

    name: Text
    time_zone: str
    rfo_required_from_level: int = Field(ge=1)
    default_segment: Name
    repeat_fault_days: int = Field(default=30, ge=0, le=3650)
    """The escalation's first note says how many tickets the customer raised in this many
    days (0: not counted)."""

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {value!r} (expected an IANA name such as 'Europe/London')"
            ) from None
        return value


class BusinessHours(_Model):
    """``[business_hours]``: when the communication plan's clock runs."""

    days: Annotated[
        tuple[Weekday, ...], Field(strict=False, min_length=1), AfterValidator(_check_unique)
    ]
    start: ClockTime
    end: ClockTime
    holidays: Annotated[tuple[LenientDate, ...], _ARRAY, AfterValidator(_check_unique)] = ()

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: time, info: ValidationInfo) -> time:
        start = info.data.get("start")
        if start is not None and value <= start:
            raise ValueError(f"end {value:%H:%M} must be later than start {start:%H:%M} (same day)")
        return value

    def is_business_day(self, day: date) -> bool:
        """True if ``day`` (a local date) is one of ``days`` and not a holiday."""
        return WEEKDAYS[day.weekday()] in self.days and day not in self.holidays


class Role(_Model):
    """``[roles.<key>]``: a role that can own an escalation or be notified."""

    name: Text
    description: str = ""


class Level(_Model):
    """``[[levels]]``: one escalation level."""

    number: int = Field(ge=1)
    name: Text
    role: Text
    owner: Name
    notify: Annotated[tuple[Name, ...], _ARRAY, AfterValidator(_check_unique)] = ()
    description: str = ""


class Reason(_Model):
    """``[[reasons]]``: a reason a customer may give for escalating."""

    key: Name
    label: Text
    category: ReasonCategory


class ContactWindow(_Model):
    """One window, in local time, in which a contact call is due each business day."""

    name: Name
    start: ClockTime
    end: ClockTime

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: time, info: ValidationInfo) -> time:
        start = info.data.get("start")
        if start is not None and value <= start:
            raise ValueError(f"end {value:%H:%M} must be later than start {start:%H:%M} (same day)")
        return value


class Segment(_Model):
    """``[segments.<name>]``: a customer segment and its communication plan."""

    label: Text
    update_cadence_minutes: int = Field(gt=0)
    contact_calls: Annotated[tuple[ContactWindow, ...], _ARRAY] = ()
    update_channel: UpdateChannel

    @field_validator("contact_calls")
    @classmethod
    def _windows_apart(cls, value: tuple[ContactWindow, ...]) -> tuple[ContactWindow, ...]:
        names = [w.name for w in value]
        _check_unique(names)
        ordered = sorted(value, key=lambda w: w.start)
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            if later.start < earlier.end:
                raise ValueError(f"windows {earlier.name!r} and {later.name!r} overlap")
        return value


class Comms(_Model):
    """``[comms]``: how the worker keeps the communication plan (``jobs/comms.py``)."""

    reminder_lead_minutes: int = Field(default=30, ge=0, le=1440)
    """A duty not yet done is reminded to the owner this long before its window closes."""
    callback_grace_minutes: int = Field(default=30, ge=0, le=1440)
    """The agreed callback counts as done up to this long after the agreed time."""
    level_change_within_minutes: int = Field(default=60, ge=1, le=1440)
    """After a level change the call or update is due within this many business minutes."""
    stalled_after_minutes: int = Field(default=480, ge=1, le=100_000)
    """No agent activity on an open escalation for this many business minutes: the next
    level's executive is alerted (once per quiet spell)."""
    stalled_after_missed: int = Field(default=2, ge=1, le=100)
    """This many duties missed in a row alert the next level's executive as well."""
    caller_log: bool = False
    """Also count an answered outbound call to the customer's number in the helpdesk's caller
    log (the phone system's own record; Zammad's CTI log) as a call done."""


class Parking(_Model):
    """``[parking]``: how long a resolved escalation is monitored before it is closed."""

    days: int = Field(ge=1)
    confirmation_call_day: int = Field(ge=1)
    business_days: bool
    close_original: bool = False
    """When the customer confirms, close the original ticket as well as the escalation's."""

    @field_validator("confirmation_call_day")
    @classmethod
    def _within_parking(cls, value: int, info: ValidationInfo) -> int:
        days = info.data.get("days")
        if days is not None and value > days:
            raise ValueError(
                f"confirmation_call_day {value} is after the end of parking (days = {days})"
            )
        return value


class Archive(_Model):
    """``[archive]``: how long the archive copy of a closed escalation is kept."""

    retention_months: int = Field(ge=1)
    legal_hold_tag: TagName


class Carrier(_Model):
    """``[carrier]``: third-party (carrier) contacts and the hand-over when the route fails."""

    stages: Annotated[
        tuple[Name, ...], Field(strict=False, min_length=1), AfterValidator(_check_unique)
    ]
    required_details: Annotated[tuple[CarrierDetail, ...], _ARRAY, AfterValidator(_check_unique)]
    handover_role: Name


class ReportSchedule(_Model):
    """``[report]``: when the worker writes the nightly reconciliation report."""

    nightly: bool = True
    at: ClockTime = time(6, 0)
    """Local time (``[process] time_zone``) from which the day's report is written."""
    note_on_ticket: Annotated[int, Field(gt=0)] | None = None
    """The id of a ticket (in Zammad, the number at the end of its address) on which each
    nightly report's summary is posted as an internal note; none when unset."""


class ProcessProfile(_Model):
    """The whole of ``process.toml``."""

    process: ProcessSection
    business_hours: BusinessHours
    roles: dict[Name, Role] = Field(min_length=1)
    levels: tuple[Level, ...] = Field(strict=False, min_length=1)
    reasons: tuple[Reason, ...] = Field(strict=False, min_length=1)
    segments: dict[Name, Segment] = Field(min_length=1)
    comms: Comms = Comms()
    parking: Parking
    archive: Archive
    carrier: Carrier
    report: ReportSchedule = ReportSchedule()

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> ProcessProfile:
        issues = consistency_issues(
            process=self.process,
            roles=self.roles,
            levels=self.levels,
            reasons=self.reasons,
            segments=self.segments,
            carrier=self.carrier,
        )
        report_issues(issues, info)
        return self

    # -- convenience for the rest of the code ------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        """The process time zone; every local time in the profile is in this zone."""
        return ZoneInfo(self.process.time_zone)

    @property
    def max_level(self) -> int:
        """The highest level number (levels are numbered 1..max_level)."""
        return len(self.levels)

    def level(self, number: int) -> Level:
        """The level with this number.

        Raises:
            KeyError: there is no such level.
        """
        if not 1 <= number <= len(self.levels):
            raise KeyError(f"no escalation level {number} (levels are 1..{len(self.levels)})")
        return self.levels[number - 1]

    def owner_rule(self, number: int) -> str:
        """The effective owner rule at a level: ``flagging_agent`` or a role key.

        ``unchanged`` is resolved by walking down to the nearest lower level with another rule.
        """
        for n in range(number, 0, -1):
            rule = self.level(n).owner
            if rule != OWNER_UNCHANGED:
                return rule
        raise KeyError(f"level {number} has no owner rule")  # unreachable once validated

    def owner_role(self, number: int) -> str | None:
        """The role key that owns the escalation at a level, or None for the flagging agent."""
        rule = self.owner_rule(number)
        return None if rule == OWNER_FLAGGING_AGENT else rule

    def roles_for_level(self, number: int) -> tuple[str, ...]:
        """Role keys to notify and subscribe at a level, in order, without repeats.

        These are the owner role at that level (if it is a role) and everyone in ``notify`` of
        that level and of every level below it: executives engaged at a lower level stay on.
        """
        keys: list[str] = []
        owner = self.owner_role(number)
        if owner is not None:
            keys.append(owner)
        for n in range(1, number + 1):
            keys.extend(self.level(n).notify)
        return tuple(dict.fromkeys(keys))

    def rfo_required(self, level: int) -> bool:
        """True if an escalation at this level needs a Reason for Outage before closing."""
        return level >= self.process.rfo_required_from_level

    def reason(self, key: str) -> Reason:
        """The reason with this key. Raises ``KeyError`` if there is none."""
        for reason in self.reasons:
            if reason.key == key:
                return reason
        raise KeyError(f"unknown escalation reason {key!r}")

    @property
    def reason_keys(self) -> tuple[str, ...]:
        return tuple(r.key for r in self.reasons)

    def segment(self, name: str | None = None) -> Segment:
        """The segment with this name, or the default segment when ``name`` is None or empty."""
        key = name or self.process.default_segment
        try:
            return self.segments[key]
        except KeyError:
            raise KeyError(f"unknown customer segment {key!r}") from None

    def referenced_roles(self) -> dict[str, Loc]:
        """Every role key the profile uses, with the first place (as a loc) that uses it."""
        return referenced_roles(levels=self.levels, carrier=self.carrier)


def referenced_roles(*, levels: Sequence[Level] | None, carrier: Carrier | None) -> dict[str, Loc]:
    """Role keys used by levels (owner, notify) and the carrier hand-over, with where first used.

    Either part may be None (it failed validation); it is then left out.
    """
    used: dict[str, Loc] = {}
    for i, level in enumerate(levels or ()):
        if level.owner not in OWNER_RULES:
            used.setdefault(level.owner, ("levels", i, "owner"))
        for j, key in enumerate(level.notify):
            used.setdefault(key, ("levels", i, "notify", j))
    if carrier is not None:
        used.setdefault(carrier.handover_role, ("carrier", "handover_role"))
    return used


def report_issues(issues: list[Issue], info: ValidationInfo) -> None:
    """Hand consistency issues to the mapping loader, or raise them when there is none.

    The loader validates with ``context={ISSUES_CONTEXT_KEY: []}`` and turns each issue into a
    ``MappingProblem`` with its own line and key. Without that context (a model built in code),
    the issues are raised as one ``ValueError``.
    """
    context = info.context
    if isinstance(context, dict) and isinstance(context.get(ISSUES_CONTEXT_KEY), list):
        context[ISSUES_CONTEXT_KEY].extend(issues)
    elif issues:
        raise ValueError("; ".join(f"{format_loc(loc)}: {msg}" for loc, msg in issues))


def format_loc(loc: Sequence[str | int]) -> str:
    """A loc tuple as a dotted key: ``("levels", 2, "owner")`` -> ``levels[2].owner``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)
            out += f".{text}" if out else text
    return out


def choices_hint(value: str, choices: Sequence[str]) -> str:
    """``(expected one of a, b, c); did you mean 'b'?`` for an unknown name."""
    hint = f"(expected one of {', '.join(choices)})" if choices else "(none are defined)"
    close = difflib.get_close_matches(value, list(choices), n=1)
    return f"{hint}; did you mean {close[0]!r}?" if close else hint


def consistency_issues(
    *,
    process: ProcessSection | None,
    roles: Mapping[str, Role] | None,
    levels: Sequence[Level] | None,
    reasons: Sequence[Reason] | None,
    segments: Mapping[str, Segment] | None,
    carrier: Carrier | None,
) -> list[Issue]:
    """Checks that relate parts of the profile to each other.

    Any part may be None (it failed its own validation); checks that need it are skipped, so
    the loader can still report every other issue in one go.
    """
    issues: list[Issue] = []
    role_keys = list(roles) if roles is not None else None

    if roles is not None:
        for key in roles:
            if key in OWNER_RULES:
                issues.append(
                    (("roles", key), f"{key!r} is an owner rule and cannot be a role name")
                )

    if levels is not None:
        issues.extend(_level_issues(levels, role_keys))

    if process is not None and levels is not None:
        top = len(levels)
        if process.rfo_required_from_level > top:
            issues.append(
                (
                    ("process", "rfo_required_from_level"),
                    f"level {process.rfo_required_from_level} does not exist (levels are 1..{top})",
                )
            )

    if process is not None and segments is not None:
        name = process.default_segment
        if name not in segments:
            issues.append(
                (
                    ("process", "default_segment"),
                    f"unknown segment {name!r} {choices_hint(name, list(segments))}",
                )
            )

    if reasons is not None:
        _duplicates(issues, "reasons", "key", [r.key for r in reasons], "reason {!r}")

    if carrier is not None and role_keys is not None and carrier.handover_role not in role_keys:
        role = carrier.handover_role
        issues.append(
            (("carrier", "handover_role"), f"unknown role {role!r} {choices_hint(role, role_keys)}")
        )
    return issues


def _duplicates(
    issues: list[Issue], section: str, field: str, values: Sequence[Any], what: str
) -> dict[Any, int]:
    """Report every value met before in ``section``; return value → first index."""
    first: dict[Any, int] = {}
    for i, value in enumerate(values):
        if value in first:
            issues.append(
                (
                    (section, i, field),
                    f"duplicate {what.format(value)} (first at {section}[{first[value]}])",
                )
            )
        else:
            first[value] = i
    return first


def _level_issues(levels: Sequence[Level], role_keys: list[str] | None) -> list[Issue]:
    issues: list[Issue] = []
    first = _duplicates(issues, "levels", "number", [lv.number for lv in levels], "level {}")
    expected = range(1, len(levels) + 1)
    missing = [n for n in expected if n not in first]
    extra = [n for n in first if n not in expected]
    if missing or extra:
        what = f"missing level {', '.join(map(str, missing))}" if missing else ""
        if extra:
            what += "; " if what else ""
            what += f"level {', '.join(map(str, extra))} is out of range"
        issues.append(
            (("levels",), f"levels must be numbered 1..N without gaps or repeats: {what}")
        )
    elif len(first) == len(levels):
        for i, level in enumerate(levels):
            if level.number != i + 1:
                issues.append(
                    (
                        ("levels", i, "number"),
                        f"level {level.number} is listed in position {i + 1}; "
                        "list [[levels]] in order 1..N",
                    )
                )
                break

    rules = [*OWNER_RULES, *(role_keys or [])]
    for i, level in enumerate(levels):
        if level.number == 1 and level.owner == OWNER_UNCHANGED:
            issues.append(
                (
                    ("levels", i, "owner"),
                    "the first level cannot keep an 'unchanged' owner (there is none yet); "
                    f"use {OWNER_FLAGGING_AGENT!r} or a role",
                )
            )
        if role_keys is not None and level.owner not in rules:
            issues.append(
                (
                    ("levels", i, "owner"),
                    f"unknown rule {level.owner!r} {choices_hint(level.owner, rules)}",
                )
            )
        if role_keys is not None:
            for j, key in enumerate(level.notify):
                if key not in role_keys:
                    issues.append(
                        (
                            ("levels", i, "notify", j),
                            f"unknown role {key!r} {choices_hint(key, role_keys)}",
                        )
                    )
    return issues
