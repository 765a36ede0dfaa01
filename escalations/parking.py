"""Parking a resolved escalation (DESIGN.md rule 7, seed 003): how long it stays parked and
when the final confirmation call is due, from ``[parking]`` in ``process.toml``.

A resolved escalation is parked until ``resolved + days`` (calendar days, or business days
with ``business_days = true``), at the same local time. Day *k* of parking runs from
``resolved + (k - 1)`` days to ``resolved + k`` days; the confirmation call is due within day
``confirmation_call_day``, so with the shipped 3 and 3 it is due by the end of parking."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import datetime

from escalations.comms.calendar import BusinessCalendar
from escalations.models import ParkingPeriod
from escalations.profile import ProcessProfile


def pending_until(
    profile: ProcessProfile, calendar: BusinessCalendar, resolved: datetime
) -> datetime:
    settings = profile.parking
    return calendar.add_days(resolved, settings.days, business=settings.business_days)


def confirmation_window(
    profile: ProcessProfile, calendar: BusinessCalendar, resolved: datetime
) -> tuple[datetime, datetime]:
    """(opens, due) of the final confirmation call."""
    settings = profile.parking
    day = settings.confirmation_call_day
    business = settings.business_days
    return (
        calendar.add_days(resolved, day - 1, business=business),
        calendar.add_days(resolved, day, business=business),
    )


def pauses(periods: Sequence[ParkingPeriod]) -> tuple[tuple[datetime, datetime | None], ...]:
    """The stretches the escalation was parked (``None``: still parked), when the
    communication plan is suspended."""
    return tuple((p.resolved_at, p.ended_at) for p in periods)


def add_months(instant: datetime, months: int) -> datetime:
    """``instant`` moved on by calendar months (the 31st becomes the month's last day)."""
    month0 = instant.month - 1 + months
    year, month = instant.year + month0 // 12, month0 % 12 + 1
    day = min(instant.day, calendar.monthrange(year, month)[1])
    return instant.replace(year=year, month=month, day=day)
