"""The duties a segment's communication plan gives an escalation (DESIGN.md rule 6).

``plan`` lists every duty whose window has opened by ``until`` (and before the escalation
ended), each with a key that is stable across runs, so the comms job can store them once and
find them again:

- ``callback`` — the callback agreed at the flag: a call, open from the flag until the agreed
  time plus ``callback_grace_minutes``;
- a segment with ``contact_calls`` — ``call:<local date>:<window>``: one call in each window,
  on every business day, for windows that end after the flag;
- a segment without — ``cadence:<n>``: update *n* is open from ``(n-1) × cadence`` to
  ``n × cadence`` business minutes after the flag (the cadence agreed at escalation where
  there is one, else the segment's); a call or a ticket update by ``update_channel``;
- ``level:<level>:<local time of the change>`` — after each level change, a call (a segment
  with ``contact_calls``, or ``update_channel = "call"``) or a ticket update, due within
  ``level_change_within_minutes`` business minutes;
- ``confirmation:<n>`` — the final confirmation call of the *n*-th parking, inside its day
  (``escalations.parking``).

``next_due`` is the end of the earliest window still to be met, for the helpdesk's "Calls and
updates due today" view: the plan looked at ``NEXT_DUE_HORIZON`` ahead.

While the escalation is parked the plan is suspended: no duty but the confirmation call whose
window meets a parking stretch is given (one still open ends the plan there).

Business days, hours, holidays and the time zone are the calendar's; windows are local
wall-clock times, so they are right on both sides of a DST change.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from escalations.comms.calendar import BusinessCalendar
from escalations.profile import Segment

CONFIRMATION_PREFIX = "confirmation:"
"""Slot prefix of the final confirmation call, the one duty of a parked escalation."""
MAX_CADENCE_DUTIES = 10_000
"""A bound on cadence duties per escalation (a year of 15-minute updates is 9 000)."""
NEXT_DUE_HORIZON = timedelta(days=10)
"""How far ahead ``next_due`` looks: past a long weekend and a holiday week's bank days."""


class DutyKind(enum.StrEnum):
    CALL = "call"
    UPDATE = "update"
    """A customer-visible update on the ticket."""


@dataclass(frozen=True)
class DutySpec:
    key: str
    kind: DutyKind
    opens_at: datetime
    due_at: datetime
    """End of the window: done counts in [opens_at, due_at]."""
    reason: str


@dataclass(frozen=True)
class EscalationFacts:
    flagged_at: datetime
    callback_at: datetime | None = None
    level_changes: tuple[tuple[int, datetime], ...] = ()
    """(level, when set) for each level set after the first."""
    agreed_cadence_minutes: int | None = None
    ended_at: datetime | None = None
    """Closed: no duty opens at or after it."""
    pauses: tuple[tuple[datetime, datetime | None], ...] = ()
    """(resolved, un-parked or ``None`` while still parked) of each parking."""
    confirmations: tuple[tuple[int, datetime, datetime], ...] = ()
    """(parking number, opens, due) of each parking's confirmation call."""


@dataclass(frozen=True)
class PlanRules:
    callback_grace_minutes: int = 30
    level_change_within_minutes: int = 60
    shortest_window_minutes: int = 0
    """A contact-call window already running at the flag is a duty only with at least this
    much of it left (the comms job passes the reminder lead): a flag at 11:55 does not make
    a morning call due at 12:00."""


def plan(
    facts: EscalationFacts,
    segment: Segment,
    calendar: BusinessCalendar,
    rules: PlanRules,
    until: datetime,
) -> list[DutySpec]:
    """Every duty whose window opens before ``until`` (and before ``facts.ended_at``),
    sorted by (due, key)."""
    limit = min(until, facts.ended_at) if facts.ended_at is not None else until
    open_pause = [start for start, end in facts.pauses if end is None]
    confirmations = [
        DutySpec(f"{CONFIRMATION_PREFIX}{n}", DutyKind.CALL, opens, due, "final confirmation call")
        for n, opens, due in facts.confirmations
        if opens < limit
    ]
    if open_pause:
        limit = min(limit, open_pause[0])
    duties: list[DutySpec] = []
    if facts.callback_at is not None:
        grace = _minutes(rules.callback_grace_minutes)
        due = facts.callback_at + grace
        # around the agreed time (from grace before it), never before the flag; an agreed
        # time already past at the flag keeps its old window
        opens = max(facts.flagged_at, facts.callback_at - grace)
        if opens >= due:
            opens = min(facts.flagged_at, facts.callback_at)
        duties.append(DutySpec("callback", DutyKind.CALL, opens, due, "agreed callback"))
    if segment.contact_calls:
        duties += _contact_calls(facts, segment, calendar, limit, rules)
    else:
        duties += _cadence(facts, segment, calendar, limit)
    calls = bool(segment.contact_calls) or segment.update_channel == "call"
    for level, at in facts.level_changes:
        local = calendar.local(at)
        duties.append(
            DutySpec(
                f"level:{level}:{local:%Y-%m-%dT%H:%M}",
                DutyKind.CALL if calls else DutyKind.UPDATE,
                at,
                calendar.add_business_minutes(at, rules.level_change_within_minutes),
                f"{'call' if calls else 'update'} after level {level}",
            )
        )
    kept = [
        d
        for d in duties
        if d.opens_at < limit and not suspended(d.opens_at, d.due_at, facts.pauses)
    ]
    return sorted([*kept, *confirmations], key=lambda d: (d.due_at, d.key))


def next_due(
    facts: EscalationFacts,
    segment: Segment,
    calendar: BusinessCalendar,
    rules: PlanRules,
    now: datetime,
    settled: Collection[str],
) -> datetime | None:
    """When the next duty not yet done or missed is due (the end of its window), at or after
    ``now``; ``None`` when the plan has none within ``NEXT_DUE_HORIZON``. ``settled`` holds
    the keys of the duties done or missed."""
    ahead = plan(facts, segment, calendar, rules, until=now + NEXT_DUE_HORIZON)
    return min((d.due_at for d in ahead if d.key not in settled and d.due_at >= now), default=None)


def suspended(
    opens: datetime, due: datetime, pauses: tuple[tuple[datetime, datetime | None], ...]
) -> bool:
    """Whether a window [opens, due] meets a parking stretch (the plan is suspended then)."""
    return any(
        opens < (end or datetime.max.replace(tzinfo=opens.tzinfo)) and due > start
        for start, end in pauses
    )


def _contact_calls(
    facts: EscalationFacts,
    segment: Segment,
    calendar: BusinessCalendar,
    limit: datetime,
    rules: PlanRules,
) -> list[DutySpec]:
    found = []
    shortest = _minutes(rules.shortest_window_minutes)
    for day in calendar.business_days(facts.flagged_at, limit):
        for window in segment.contact_calls:
            opens, closes = calendar.window(day, window.start, window.end)
            opens = max(opens, facts.flagged_at)  # a call before the escalation is not one
            if closes - opens >= max(shortest, _minutes(1)) and opens < limit:
                found.append(
                    DutySpec(
                        f"call:{day.isoformat()}:{window.name}",
                        DutyKind.CALL,
                        opens,
                        closes,
                        f"{window.name} contact call",
                    )
                )
    return found


def _cadence(
    facts: EscalationFacts, segment: Segment, calendar: BusinessCalendar, limit: datetime
) -> list[DutySpec]:
    every = facts.agreed_cadence_minutes or segment.update_cadence_minutes
    kind = DutyKind.CALL if segment.update_channel == "call" else DutyKind.UPDATE
    what = "call" if kind is DutyKind.CALL else "update"
    found = []
    opens = facts.flagged_at
    for n in range(1, MAX_CADENCE_DUTIES + 1):
        if opens >= limit:
            break
        due = calendar.add_business_minutes(facts.flagged_at, n * every)
        found.append(DutySpec(f"cadence:{n}", kind, opens, due, f"{_every(every)} {what}"))
        opens = due
    return found


def _every(minutes: int) -> str:
    if minutes % 60 == 0:
        hours = minutes // 60
        return "hourly" if hours == 1 else f"{hours}-hourly"
    return f"{minutes}-minute"


def _minutes(n: int) -> timedelta:
    return timedelta(minutes=n)
