"""Business time in Europe/London from the shipped process.toml: weekends, bank holidays and
both DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from escalations.comms.calendar import BusinessCalendar
from escalations.mappings import load_mappings
from escalations.settings import shipped_mappings_dir


@pytest.fixture(scope="module")
def cal() -> BusinessCalendar:
    return BusinessCalendar.from_profile(load_mappings(shipped_mappings_dir()).profile)


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_local_wall_clock_times_on_both_sides_of_each_dst_change(cal: BusinessCalendar) -> None:
    nine = time(9, 0)
    assert cal.at(date(2027, 3, 26), nine) == z("2027-03-26T09:00")  # GMT
    assert cal.at(date(2027, 3, 30), nine) == z("2027-03-30T08:00")  # BST from 28 March
    assert cal.at(date(2026, 10, 23), nine) == z("2026-10-23T08:00")  # BST
    assert cal.at(date(2026, 10, 26), nine) == z("2026-10-26T09:00")  # GMT from 25 October


def test_business_days_skip_weekends_and_bank_holidays(cal: BusinessCalendar) -> None:
    days = list(cal.business_days(z("2026-12-23T12:00"), z("2026-12-31T12:00")))
    assert days == [
        date(2026, 12, 23), date(2026, 12, 24),  # 25th Christmas, 26–27 weekend,
        date(2026, 12, 29), date(2026, 12, 30), date(2026, 12, 31),  # 28th Boxing Day (sub.)
    ]  # fmt: skip


def test_business_minutes_stop_at_night_on_weekends_and_holidays(cal: BusinessCalendar) -> None:
    add = cal.add_business_minutes
    assert add(z("2027-03-25T10:00"), 60) == z("2027-03-25T11:00")
    # Thursday 17:55 GMT + 60: 5 minutes left, then Good Friday, the weekend, Easter Monday;
    # Tuesday opens at 08:00 BST (07:00 UTC)
    assert add(z("2027-03-25T17:55"), 60) == z("2027-03-30T07:55")
    assert add(z("2027-03-27T12:00"), 30) == z("2027-03-30T07:30")  # a Saturday start
    assert add(z("2027-03-25T18:00"), 1) == z("2027-03-30T07:01")  # at closing time
    assert add(z("2027-03-25T12:00"), 0) == z("2027-03-25T12:00")
    # a whole business day is 600 minutes
    assert add(z("2026-12-01T08:00"), 600) == z("2026-12-01T18:00")
    assert add(z("2026-12-01T08:00"), 601) == z("2026-12-02T08:01")


def test_next_business_instant(cal: BusinessCalendar) -> None:
    assert cal.next_business_instant(z("2026-12-01T10:00")) == z("2026-12-01T10:00")
    assert cal.next_business_instant(z("2026-12-24T19:00")) == z("2026-12-29T08:00")
    assert cal.next_business_instant(z("2026-12-01T06:00")) == z("2026-12-01T08:00")


def test_add_days_keeps_the_local_time_across_dst_and_skips_closed_days(
    cal: BusinessCalendar,
) -> None:
    # Friday 26 Mar 2027 is Good Friday, Monday 29 Mar Easter Monday; clocks go forward on 28th
    thursday = z("2027-03-25T15:00")  # 15:00 GMT
    assert cal.add_days(thursday, 3, business=False) == z("2027-03-28T14:00")  # 15:00 BST
    assert cal.add_days(thursday, 1, business=True) == z("2027-03-30T14:00")  # Tuesday
    assert cal.add_days(thursday, 3, business=True) == z("2027-04-01T14:00")
    saturday = z("2027-03-27T10:00")
    assert cal.add_days(saturday, 1, business=True) == z("2027-03-30T09:00")  # day one: Tuesday
    assert cal.add_days(thursday, 0, business=False) == thursday
