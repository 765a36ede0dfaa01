from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from escalations.carrier import carrier_template, parse_carrier_note, parse_local_time
from escalations.mappings import load_mappings
from escalations.settings import shipped_mappings_dir

LONDON = ZoneInfo("Europe/London")
STAGES = ("agent", "team_leader", "manager")
REQUIRED = ("carrier", "stage", "forename", "location", "called_at")
WRITTEN = datetime(2026, 7, 1, 13, 30, tzinfo=UTC)  # 14:30 BST


def parse(body: str, **kw):
    kw = {"written_at": WRITTEN, **kw}
    return parse_carrier_note(
        body, heading="Carrier contact", tz=LONDON, stages=STAGES, required=REQUIRED, **kw
    )


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
        "Stage: 'boss' is not one of agent, team leader, manager",
        "Time of call: 'soon' is not a time (write 14:05 or 2.05pm)",
    )
    assert note.missing == ()  # present but unreadable: reported once, as a problem


def test_other_notes_are_not_carrier_notes() -> None:
    assert parse("<p>Called the customer, no answer.</p>") is None
    assert parse("") is None


# -- the times people type -------------------------------------------------------------------

AT_1405 = datetime(2026, 7, 1, 13, 5, tzinfo=UTC)
AT_1400 = datetime(2026, 7, 1, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("14:05", AT_1405),
        ("14.05", AT_1405),
        ("2.05pm", AT_1405),
        ("2:05 pm", AT_1405),
        ("2:05PM", AT_1405),
        ("2.05 p.m.", AT_1405),
        ("2pm", AT_1400),
        ("2 PM", AT_1400),
        ("14:05 today", AT_1405),
        ("Today 2pm", AT_1400),
        ("14:05 yesterday", AT_1405 - timedelta(days=1)),
        ("yesterday at 2.05pm", AT_1405 - timedelta(days=1)),
        ("2026-06-30 14:05", AT_1405 - timedelta(days=1)),
        ("2026-06-30T2:05 pm", AT_1405 - timedelta(days=1)),
        ("12:30am", datetime(2026, 6, 30, 23, 30, tzinfo=UTC)),  # 00:30 BST on 1 July
        ("12pm", datetime(2026, 7, 1, 11, 0, tzinfo=UTC)),
        ("9:40", datetime(2026, 7, 1, 8, 40, tzinfo=UTC)),
    ],
)
def test_the_times_people_type(typed: str, expected: datetime) -> None:
    assert parse_local_time(typed, WRITTEN, LONDON) == expected
    note = parse(f"Carrier contact\nTime of call: {typed}")
    assert note is not None
    assert note.called_at == expected
    assert note.problems == ()


@pytest.mark.parametrize(
    "typed", ["25:99", "24:00", "14:60", "14", "13pm", "0am", "2.5pm", "soon", "2026-02-30 14:05",
              "2026-06-30 14:05 today", "today 14:05 yesterday", "14:05:30"],
)  # fmt: skip
def test_what_is_not_a_time(typed: str) -> None:
    assert parse_local_time(typed, WRITTEN, LONDON) is None
    note = parse(f"Carrier contact\nTime of call: {typed}")
    assert note is not None
    assert note.problems == (f"Time of call: '{typed}' is not a time (write 14:05 or 2.05pm)",)


def test_a_time_alone_is_the_most_recent_such_time_not_in_the_future() -> None:
    """Written at 14:30 BST: 14:40 is within the allowance (a clock a little out, a time
    rounded up), 15:00 can only have been yesterday; just after midnight, 23:50 was the day
    before and just before it, 00:05 is a few minutes ahead."""
    assert parse_local_time("14:40", WRITTEN, LONDON) == datetime(2026, 7, 1, 13, 40, tzinfo=UTC)
    assert parse_local_time("15:00", WRITTEN, LONDON) == datetime(2026, 6, 30, 14, 0, tzinfo=UTC)
    just_after_midnight = datetime(2026, 6, 30, 23, 10, tzinfo=UTC)  # 00:10 BST on 1 July
    assert parse_local_time("23:50", just_after_midnight, LONDON) == datetime(
        2026, 6, 30, 22, 50, tzinfo=UTC
    )
    just_before_midnight = datetime(2026, 6, 30, 22, 55, tzinfo=UTC)  # 23:55 BST
    assert parse_local_time("00:05", just_before_midnight, LONDON) == datetime(
        2026, 6, 30, 23, 5, tzinfo=UTC
    )
    winter = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # 09:00 GMT
    assert parse_local_time("8.15am", winter, LONDON) == datetime(2026, 12, 1, 8, 15, tzinfo=UTC)


def test_a_note_stamped_after_now_counts_as_written_now() -> None:
    """The helpdesk's clock an hour ahead: 14:05 typed at 13:10 by the worker's (injected)
    clock is yesterday's, not today's yet to come."""
    now = datetime(2026, 7, 1, 12, 10, tzinfo=UTC)  # 13:10 BST
    note = parse("Carrier contact\nTime of call: 14:05", now=now)
    assert note is not None
    assert note.called_at == AT_1405 - timedelta(days=1)
    read_later = parse("Carrier contact\nTime of call: 14:05", now=WRITTEN + timedelta(hours=3))
    assert read_later is not None
    assert read_later.called_at == AT_1405  # read after a worker outage: the note's day


# -- stages and the template's hints --------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stage"),
    [
        ("agent", "agent"),
        ("AGENT", "agent"),
        ("Team Leader", "team_leader"),
        ("team-leader", "team_leader"),
        ("team_leader", "team_leader"),
        ("agent (agent, team leader or manager)", "agent"),
        ("team leader   (agent, team leader or manager)", "team_leader"),
        ("Manager (they picked up at last)", "manager"),
    ],
)
def test_stages_in_their_human_forms_and_with_the_hint_left(typed: str, stage: str) -> None:
    note = parse(f"Carrier contact\nStage: {typed}")
    assert note is not None
    assert (note.stage, note.problems) == (stage, ())


@pytest.mark.parametrize(
    ("typed", "shown"),
    [("boss", "boss"), ("boss (agent, team leader or manager)", "boss"), ("agent x", "agent x")],
)
def test_a_stage_that_is_none_of_them_lists_them_as_people_write_them(
    typed: str, shown: str
) -> None:
    note = parse(f"Carrier contact\nStage: {typed}")
    assert note is not None
    assert note.stage is None
    assert note.problems == (f"Stage: '{shown}' is not one of agent, team leader, manager",)
    assert "Stage" not in note.missing


def test_a_hint_left_after_a_value_is_dropped_other_brackets_are_kept() -> None:
    note = parse(
        "Carrier contact\nCarrier: BT (the company you called)\nForename: (the first name of "
        "the person you spoke to)\nLocation: Leeds (North)\n"
        "Time of call: 14:05 (e.g. 14:05 or 2.05pm, local time)"
    )
    assert note is not None
    assert (note.carrier, note.forename, note.location) == ("BT", None, "Leeds (North)")
    assert note.called_at == AT_1405
    assert note.missing == ("Stage", "Forename")


# -- one template, everywhere ---------------------------------------------------------------

EXAMPLES = {
    "Carrier": "BT",
    "Stage": "team leader",
    "Forename": "Dave",
    "Location": "Glasgow",
    "User ID": "BT-4411",
    "Time of call": "2.05pm",
}
HINT_RE = re.compile(r"^([^:]+): \(.*\)$")


@pytest.fixture(scope="module")
def shipped():
    return load_mappings(shipped_mappings_dir())


def _parse_shipped(shipped, body: str):
    carrier = shipped.profile.carrier
    return parse_carrier_note(
        body,
        heading=shipped.helpdesk.carrier.note_heading,
        written_at=WRITTEN,
        tz=shipped.profile.tz,
        stages=carrier.stages,
        required=carrier.required_details,
    )


def test_the_template_is_the_heading_and_one_hint_per_detail(shipped) -> None:
    lines = carrier_template(shipped).splitlines()
    assert lines[0] == "Carrier contact"
    assert [HINT_RE.match(line).group(1) for line in lines[1:]] == list(EXAMPLES)  # type: ignore[union-attr]
    assert "Stage: (agent, team leader or manager)" in lines
    assert "User ID: (their user ID, if they gave one)" in lines  # not required


def test_the_template_filled_in_is_a_complete_contact(shipped) -> None:
    filled = "\n".join(
        HINT_RE.sub(lambda m: f"{m.group(1)}: {EXAMPLES[m.group(1)]}", line)
        for line in carrier_template(shipped).splitlines()
    )
    note = _parse_shipped(shipped, filled)
    assert note is not None
    assert note.complete, (note.missing, note.problems)
    assert (note.carrier, note.stage, note.forename, note.location, note.user_id) == (
        "BT", "team_leader", "Dave", "Glasgow", "BT-4411",
    )  # fmt: skip
    assert note.called_at == AT_1405


def test_the_template_filled_in_with_the_hints_left_is_complete(shipped) -> None:
    """Typing the value before the hint, without deleting it."""
    filled = "\n".join(
        re.sub(r"^([^:]+): ", lambda m: f"{m.group(0)}{EXAMPLES[m.group(1)]} ", line)
        for line in carrier_template(shipped).splitlines()
    )
    note = _parse_shipped(shipped, filled)
    assert note is not None
    assert note.complete, (note.missing, note.problems)
    assert (note.carrier, note.forename, note.location, note.user_id) == (
        "BT", "Dave", "Glasgow", "BT-4411",
    )  # fmt: skip


def test_the_template_pasted_unfilled_names_every_required_detail(shipped) -> None:
    from escalations.bindings.zammad.provision import as_html

    for body in (carrier_template(shipped), as_html(carrier_template(shipped))):
        note = _parse_shipped(shipped, body)
        assert note is not None
        assert note.missing == ("Carrier", "Stage", "Forename", "Location", "Time of call")
        assert note.problems == ()
        assert (note.carrier, note.stage, note.user_id, note.called_at) == (None,) * 4


def test_the_template_follows_the_mappings(shipped) -> None:
    carrier = shipped.profile.carrier.model_copy(
        update={"stages": ("first_line", "duty_manager"), "required_details": ("carrier",)}
    )
    profile = shipped.profile.model_copy(update={"carrier": carrier})
    helpdesk = shipped.helpdesk.model_copy(
        update={"carrier": shipped.helpdesk.carrier.model_copy(update={"note_heading": "BT call"})}
    )
    text = carrier_template(
        type(shipped)(profile=profile, helpdesk=helpdesk, directory=shipped.directory)
    )
    assert text.splitlines()[:3] == [
        "BT call",
        "Carrier: (the company you called)",
        "Stage: (first line or duty manager, if they gave one)",
    ]


def test_the_agent_guide_shows_the_template(shipped) -> None:
    guide = Path(__file__).resolve().parents[2] / "docs" / "agents.md"
    section = guide.read_text().split("## 3. Log a carrier contact")[1].split("\n## ")[0]
    block = re.search(r"```\n(.*?)```", section, re.DOTALL)
    assert block is not None
    assert block.group(1) == carrier_template(shipped)


def test_the_guide_and_the_readme_say_how_much_leeway_a_time_alone_has() -> None:
    from escalations.carrier import FUTURE_TOLERANCE

    root = Path(__file__).resolve().parents[2]
    minutes = f"{FUTURE_TOLERANCE // timedelta(minutes=1)} minutes"
    assert minutes in (root / "docs" / "agents.md").read_text()
    assert minutes in (root / "mappings" / "README.md").read_text()
