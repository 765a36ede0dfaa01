from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from escalations.carrier import parse_carrier_note

LONDON = ZoneInfo("Europe/London")
STAGES = ("agent", "team_leader", "manager")
REQUIRED = ("carrier", "stage", "forename", "location", "called_at")
WRITTEN = datetime(2026, 7, 1, 13, 30, tzinfo=UTC)  # 14:30 BST


def parse(body: str):
    return parse_carrier_note(
        body, heading="Carrier contact", written_at=WRITTEN, tz=LONDON, stages=STAGES,
        required=REQUIRED,
    )  # fmt: skip


def test_complete_note_from_the_text_module_html() -> None:
    body = (
        "<p>Carrier contact</p><p>Carrier: BT<br>Stage: Team Leader<br>Forename: Dave<br>"
        "Location: Glasgow<br>User ID: BT-4411<br>Time of call: 14:05</p>"
    )
    note = parse(body)
    assert note is not None
    assert note.complete
    assert (note.carrier, note.stage, note.forename, note.location, note.user_id) == (
        "BT", "team_leader", "Dave", "Glasgow", "BT-4411",
    )  # fmt: skip
    assert note.called_at == datetime(2026, 7, 1, 13, 5, tzinfo=UTC)


def test_missing_details_are_named_and_user_id_is_optional() -> None:
    note = parse("Carrier contact\nCarrier: BT\nStage: agent\nTime of call: 2026-06-30 09:15")
    assert note is not None
    assert note.missing == ("Forename", "Location")
    assert note.user_id is None
    assert note.called_at == datetime(2026, 6, 30, 8, 15, tzinfo=UTC)


def test_bad_stage_and_time_are_problems() -> None:
    note = parse(
        "Carrier contact:\nCarrier: BT\nStage: boss\nForename: A\nLocation: B\nTime of call: soon"
    )
    assert note is not None
    assert not note.complete
    assert note.problems == (
        "stage 'boss' is not one of agent, team_leader, manager",
        "time of call 'soon' is not HH:MM or YYYY-MM-DD HH:MM",
    )
    assert note.missing == ()  # present but unreadable: reported once, as a problem


def test_other_notes_are_not_carrier_notes() -> None:
    assert parse("<p>Called the customer, no answer.</p>") is None
    assert parse("") is None
