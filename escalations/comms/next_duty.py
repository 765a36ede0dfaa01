"""When an escalation's next duty is due, as its escalation ticket shows it (DESIGN.md rule 6;
the "Calls and updates due today" overview lists by it).

The comms job keeps it up to date, writing when the *day* of the next duty changes: the ticket
shows the first duty of the day it was written for (each write notifies the ticket's owner
and subscribers, so one a day rather than one per duty), which is what the overview's "today"
needs. The raise writes the first value with the escalation ticket itself, so a new
escalation costs no write of its own for it. Both record what they requested
in the store's meta entry ``shown_key(escalation id)`` — ``<n>|<ISO time or empty>``, the
*n*-th value requested (0: with the create) — so the job writes only a change, each once.
One entry per escalation: a pass reads and writes its own, never one holding them all.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from escalations.comms.calendar import BusinessCalendar
from escalations.comms.duties import EscalationFacts, PlanRules, next_due
from escalations.models import Escalation
from escalations.profile import ProcessProfile, Segment

SHOWN_META = "comms.next_duty"


def shown_key(escalation_id: int) -> str:
    """The meta key of one escalation's requested next-duty time."""
    return f"{SHOWN_META}:{escalation_id}"


def rules_of(profile: ProcessProfile) -> PlanRules:
    """The plan's rules from ``process.toml [comms]``."""
    comms = profile.comms
    return PlanRules(
        callback_grace_minutes=comms.callback_grace_minutes,
        level_change_within_minutes=comms.level_change_within_minutes,
        shortest_window_minutes=comms.reminder_lead_minutes,
    )


def segment_of(profile: ProcessProfile, esc: Escalation) -> Segment:
    """The escalation's segment; the default one for a segment the mappings no longer have."""
    return profile.segments.get(esc.segment) or profile.segment()


def facts_of(
    esc: Escalation,
    *,
    level_changes: tuple[tuple[int, datetime], ...] = (),
    pauses: tuple[tuple[datetime, datetime | None], ...] = (),
    confirmations: tuple[tuple[int, datetime, datetime], ...] = (),
) -> EscalationFacts:
    """What the plan depends on; with the defaults, an escalation just raised."""
    return EscalationFacts(
        flagged_at=esc.flagged_at or esc.opened_at or esc.updated_at,
        callback_at=esc.callback_at,
        level_changes=level_changes,
        agreed_cadence_minutes=esc.agreed_cadence_minutes,
        ended_at=None,
        pauses=pauses,
        confirmations=confirmations,
    )


def at_raise(
    esc: Escalation, profile: ProcessProfile, calendar: BusinessCalendar, now: datetime
) -> datetime | None:
    """The next duty of an escalation raised at ``now``: nothing is done or missed yet."""
    return next_due(facts_of(esc), segment_of(profile, esc), calendar, rules_of(profile), now, ())


def same_day(shown: str, due: datetime | None, tz: tzinfo) -> bool:
    """Whether ``shown`` (an ISO time, or empty for none) and ``due`` fall on the same local
    day (both none counts): the ticket shows the first duty of the day it was written for."""
    if not shown or due is None:
        return not shown and due is None
    return datetime.fromisoformat(shown).astimezone(tz).date() == due.astimezone(tz).date()


def entry(seq: int, due: datetime | None) -> str:
    """The meta value for the ``seq``-th requested time."""
    return f"{seq}|{'' if due is None else due.isoformat()}"


def parse_entry(value: str | None) -> tuple[int, str] | None:
    """(n, ISO time or empty) of a meta value; ``None``: nothing requested yet."""
    if not value:
        return None
    seq, _, at = value.partition("|")
    return int(seq), at
