"""Business time in the process time zone: which local days are business days, the UTC
instants of local wall-clock times (right on both sides of a DST change), and counting
minutes only inside business hours.

A local time that does not exist (the hour skipped when the clocks go forward) or exists twice
(the hour repeated when they go back) is resolved as ``zoneinfo`` does with ``fold=0``: the
earlier of the two readings. Business hours and contact windows are normally well clear of
those hours.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from escalations.profile import BusinessHours, ProcessProfile

MAX_DAYS = 3700
"""How far ``add_business_minutes`` looks for business days (about ten years): a calendar
with none at all (every day a holiday) must not loop forever."""


@dataclass(frozen=True)
class BusinessCalendar:
    tz: ZoneInfo
    hours: BusinessHours

    @classmethod
    def from_profile(cls, profile: ProcessProfile) -> BusinessCalendar:
        return cls(ZoneInfo(profile.process.time_zone), profile.business_hours)

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz)

    def is_business_day(self, day: date) -> bool:
        return self.hours.is_business_day(day)

    def at(self, day: date, clock: time) -> datetime:
        """The UTC instant of local ``clock`` on local ``day``."""
        return datetime.combine(day, clock, tzinfo=self.tz).astimezone(UTC)

    def window(self, day: date, start: time, end: time) -> tuple[datetime, datetime]:
        return self.at(day, start), self.at(day, end)

    def business_open(self, day: date) -> tuple[datetime, datetime]:
        """Business hours on ``day`` (whether or not it is a business day)."""
        return self.window(day, self.hours.start, self.hours.end)

    def business_days(self, start: datetime, end: datetime) -> Iterator[date]:
        """Local business days from the one holding ``start`` to the one holding ``end``."""
        day, last = self.local(start).date(), self.local(end).date()
        while day <= last:
            if self.is_business_day(day):
                yield day
            day += timedelta(days=1)

    def add_business_minutes(self, start: datetime, minutes: int) -> datetime:
        """``start`` moved on by ``minutes`` counted only inside business hours on business
        days; a start outside them counts from the next opening. ``minutes = 0`` gives
        ``start`` itself."""
        if minutes <= 0:
            return start
        left = timedelta(minutes=minutes)
        day = self.local(start).date()
        for _ in range(MAX_DAYS):
            if self.is_business_day(day):
                opens, closes = self.business_open(day)
                begin = max(opens, start)
                if begin < closes:
                    if begin + left <= closes:
                        return begin + left
                    left -= closes - begin
            day += timedelta(days=1)
        raise ValueError("no business day within ten years: check [business_hours]")

    def add_days(self, start: datetime, days: int, *, business: bool) -> datetime:
        """``start`` moved on by ``days`` local days at the same wall-clock time (right across
        a DST change); with ``business``, only business days count (from a closed day, the
        first business day after it is day one)."""
        local = self.local(start)
        day, clock = local.date(), local.timetz().replace(tzinfo=None)
        if not business:
            return self.at(day + timedelta(days=days), clock)
        left = days
        for _ in range(MAX_DAYS):
            if left == 0 and self.is_business_day(day):
                return self.at(day, clock)
            day += timedelta(days=1)
            if self.is_business_day(day):
                left = max(left - 1, 0)
        raise ValueError("no business day within ten years: check [business_hours]")

    def next_business_instant(self, instant: datetime) -> datetime:
        """``instant`` if it is inside business hours, else the next opening."""
        day = self.local(instant).date()
        for _ in range(MAX_DAYS):
            if self.is_business_day(day):
                opens, closes = self.business_open(day)
                if instant < closes:
                    return max(opens, instant)
            day += timedelta(days=1)
        raise ValueError("no business day within ten years: check [business_hours]")
