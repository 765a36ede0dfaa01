"""escalations/parking.py: the end of parking, the confirmation call's day, retention months."""

from __future__ import annotations

from datetime import UTC, datetime

from escalations import parking
from escalations.comms.calendar import BusinessCalendar
from escalations.mappings import load_mappings
from escalations.settings import shipped_mappings_dir


def test_parking_ends_after_the_days_and_the_call_is_due_on_its_day() -> None:
    profile = load_mappings(shipped_mappings_dir()).profile
    cal = BusinessCalendar.from_profile(profile)
    resolved = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # Tuesday
    assert parking.pending_until(profile, cal, resolved) == datetime(2026, 12, 4, 15, tzinfo=UTC)
    assert parking.confirmation_window(profile, cal, resolved) == (
        datetime(2026, 12, 3, 15, tzinfo=UTC),
        datetime(2026, 12, 4, 15, tzinfo=UTC),
    )
    business = profile.model_copy(
        update={"parking": profile.parking.model_copy(update={"business_days": True})}
    )
    friday = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    assert parking.pending_until(business, cal, friday) == datetime(2026, 12, 9, 15, tzinfo=UTC)


def test_add_months_clamps_to_the_month_s_end() -> None:
    assert parking.add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(
        2026, 2, 28, tzinfo=UTC
    )
    assert parking.add_months(datetime(2026, 12, 5, 9, tzinfo=UTC), 12) == datetime(
        2027, 12, 5, 9, tzinfo=UTC
    )
    assert parking.add_months(datetime(2026, 11, 30, tzinfo=UTC), 3) == datetime(
        2027, 2, 28, tzinfo=UTC
    )
