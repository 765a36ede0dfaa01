"""The duties a segment's plan gives (``escalations.comms.duties.plan``), with the shipped
segments, business hours and holidays."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from escalations.comms.calendar import BusinessCalendar
from escalations.comms.duties import DutyKind, EscalationFacts, PlanRules, next_due, plan
from escalations.mappings import load_mappings
from escalations.profile import ProcessProfile
from escalations.settings import shipped_mappings_dir


@pytest.fixture(scope="module")
def profile() -> ProcessProfile:
    return load_mappings(shipped_mappings_dir()).profile


@pytest.fixture(scope="module")
def cal(profile: ProcessProfile) -> BusinessCalendar:
    return BusinessCalendar.from_profile(profile)


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


RULES = PlanRules()


def test_residential_calls_around_christmas(profile: ProcessProfile, cal: BusinessCalendar) -> None:
    facts = EscalationFacts(flagged_at=z("2026-12-24T10:30"), callback_at=z("2026-12-24T11:00"))
    duties = plan(facts, profile.segments["residential"], cal, RULES, until=z("2026-12-31T23:00"))
    assert [d.key for d in duties] == [
        "callback",
        "call:2026-12-24:morning",  # flagged inside the morning window: still due
        "call:2026-12-24:afternoon",
        "call:2026-12-29:morning",
        "call:2026-12-29:afternoon",
        "call:2026-12-30:morning",
        "call:2026-12-30:afternoon",
        "call:2026-12-31:morning",
        "call:2026-12-31:afternoon",
    ]
    callback = duties[0]
    assert (callback.kind, callback.opens_at, callback.due_at) == (
        DutyKind.CALL, z("2026-12-24T10:30"), z("2026-12-24T11:30"),
    )  # fmt: skip
    morning = duties[3]
    assert (morning.opens_at, morning.due_at, morning.reason) == (
        z("2026-12-29T09:00"), z("2026-12-29T12:00"), "morning contact call",
    )  # fmt: skip
    # keys are stable and unique
    again = plan(facts, profile.segments["residential"], cal, RULES, until=z("2026-12-31T23:00"))
    assert again == duties
    assert len({d.key for d in duties}) == len(duties)


def test_a_flag_after_the_morning_window_skips_it(
    profile: ProcessProfile, cal: BusinessCalendar
) -> None:
    facts = EscalationFacts(flagged_at=z("2026-12-01T12:30"))
    duties = plan(facts, profile.segments["residential"], cal, RULES, until=z("2026-12-01T23:00"))
    assert [d.key for d in duties] == ["call:2026-12-01:afternoon"]


def test_only_windows_opened_by_until_are_given(
    profile: ProcessProfile, cal: BusinessCalendar
) -> None:
    facts = EscalationFacts(flagged_at=z("2026-12-01T08:30"))
    duties = plan(facts, profile.segments["residential"], cal, RULES, until=z("2026-12-01T12:59"))
    assert [d.key for d in duties] == ["call:2026-12-01:morning"]


def test_enterprise_cadence_in_business_time_and_an_agreed_cadence(
    profile: ProcessProfile, cal: BusinessCalendar
) -> None:
    enterprise = profile.segments["enterprise"]
    facts = EscalationFacts(flagged_at=z("2026-12-04T16:30"))  # a Friday, GMT
    duties = plan(facts, enterprise, cal, RULES, until=z("2026-12-07T09:01"))
    assert [(d.key, d.opens_at, d.due_at) for d in duties] == [
        ("cadence:1", z("2026-12-04T16:30"), z("2026-12-04T17:30")),
        ("cadence:2", z("2026-12-04T17:30"), z("2026-12-07T08:30")),  # over the weekend
        ("cadence:3", z("2026-12-07T08:30"), z("2026-12-07T09:30")),
    ]
    assert {d.kind for d in duties} == {DutyKind.CALL}
    assert duties[0].reason == "hourly call"
    agreed = EscalationFacts(flagged_at=z("2026-12-04T16:30"), agreed_cadence_minutes=30)
    halves = plan(agreed, enterprise, cal, RULES, until=z("2026-12-04T18:00"))
    assert [d.due_at for d in halves] == [
        z("2026-12-04T17:00"), z("2026-12-04T17:30"), z("2026-12-04T18:00"),
    ]  # fmt: skip


def test_reseller_updates_and_level_changes(profile: ProcessProfile, cal: BusinessCalendar) -> None:
    facts = EscalationFacts(
        flagged_at=z("2026-12-01T09:00"), level_changes=((2, z("2026-12-01T17:30")),)
    )
    duties = plan(facts, profile.segments["reseller"], cal, RULES, until=z("2026-12-01T18:00"))
    level = [d for d in duties if d.key.startswith("level:")]
    assert [(d.key, d.kind, d.due_at) for d in level] == [
        ("level:2:2026-12-01T17:30", DutyKind.UPDATE, z("2026-12-02T08:30")),
    ]  # 30 business minutes on Tuesday, 30 on Wednesday
    assert [d.key for d in duties if d.key.startswith("cadence:")] == [
        "cadence:1", "cadence:2", "cadence:3", "cadence:4", "cadence:5",
    ]  # fmt: skip
    assert all(d.kind is DutyKind.UPDATE for d in duties)
    assert level[0].reason == "update after level 2"


def test_nothing_opens_after_the_escalation_ended(
    profile: ProcessProfile, cal: BusinessCalendar
) -> None:
    facts = EscalationFacts(flagged_at=z("2026-12-01T08:30"), ended_at=z("2026-12-01T12:30"))
    duties = plan(facts, profile.segments["residential"], cal, RULES, until=z("2026-12-03T23:00"))
    assert [d.key for d in duties] == ["call:2026-12-01:morning"]


def test_next_due_is_the_earliest_window_still_to_be_met(
    profile: ProcessProfile, cal: BusinessCalendar
) -> None:
    residential = profile.segments["residential"]
    facts = EscalationFacts(flagged_at=z("2026-12-24T10:30"), callback_at=z("2026-12-24T11:00"))
    now = z("2026-12-24T10:40")
    assert next_due(facts, residential, cal, RULES, now, set()) == z("2026-12-24T11:30")
    done = {"callback", "call:2026-12-24:morning"}
    assert next_due(facts, residential, cal, RULES, now, done) == z("2026-12-24T17:00")
    # after Christmas Eve's afternoon: the bank holidays, then the 29th's morning call
    later = z("2026-12-24T17:01")
    assert next_due(facts, residential, cal, RULES, later, done) == z("2026-12-29T12:00")


def test_next_due_of_a_parked_escalation_is_its_confirmation_call(
    profile: ProcessProfile, cal: BusinessCalendar
) -> None:
    facts = EscalationFacts(
        flagged_at=z("2026-12-01T10:30"),
        pauses=((z("2026-12-01T14:00"), None),),
        confirmations=((1, z("2026-12-04T09:00"), z("2026-12-04T17:30")),),
    )
    now = z("2026-12-01T15:00")
    due = next_due(facts, profile.segments["residential"], cal, RULES, now, set())
    assert due == z("2026-12-04T17:30")  # the day's calls are suspended while parked
    confirmed = {"confirmation:1"}
    assert next_due(facts, profile.segments["residential"], cal, RULES, now, confirmed) is None
