"""The mapping files and their loader: escalations/mappings.py, profile.py and fieldmap.py."""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from escalations.bindings.zammad.fieldmap import ZammadFieldMap
from escalations.errors import EX_CONFIG, MappingError
from escalations.mappings import KeyLineIndex, Mappings, load_mappings
from escalations.profile import ProcessProfile
from escalations.settings import shipped_mappings_dir

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mappings"
README = shipped_mappings_dir() / "README.md"


@pytest.fixture
def mapdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of the fixture mappings, named as given: ``mappings``."""
    shutil.copytree(FIXTURES, tmp_path / "mappings")
    monkeypatch.chdir(tmp_path)
    return Path("mappings")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    lines = [n for n, text in enumerate(path.read_text().splitlines(), 1) if needle in text]
    assert len(lines) == 1, f"{needle!r} is on lines {lines} of {path}"
    return lines[0]


def problems(directory: Path) -> list[str]:
    with pytest.raises(MappingError) as info:
        load_mappings(directory)
    assert info.value.exit_code == EX_CONFIG
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


def the_problem(directory: Path, prefix: str, *, total: int = 1) -> str:
    """The problem that starts with ``prefix``, out of ``total`` problems reported."""
    found = problems(directory)
    assert len(found) == total, found
    matching = [p for p in found if p.startswith(prefix)]
    assert len(matching) == 1, (prefix, found)
    return matching[0]


# -- the shipped files -------------------------------------------------------------------------


def test_shipped_mappings_validate() -> None:
    mappings = load_mappings(shipped_mappings_dir())
    assert isinstance(mappings, Mappings)
    assert mappings.directory == shipped_mappings_dir()


def test_fixture_mappings_validate() -> None:
    load_mappings(FIXTURES)


def test_shipped_profile_reproduces_the_smc_process() -> None:
    profile = load_mappings(shipped_mappings_dir()).profile
    assert profile.max_level == 4
    assert [profile.level(n).name for n in (1, 2)] == ["Escalation Recipient", "Escalation Owner"]
    assert [profile.owner_rule(n) for n in (1, 2, 3, 4)] == [
        "flagging_agent",
        "duty_manager",
        "duty_manager",
        "duty_manager",
    ]
    assert profile.owner_role(1) is None
    assert profile.roles_for_level(2) == ("duty_manager",)
    assert profile.roles_for_level(4) == (
        "duty_manager",
        "head_of_service_management",
        "head_of_enterprise_operations",
    )
    assert not profile.rfo_required(1)
    assert profile.rfo_required(2)
    assert [(r.key, r.category) for r in profile.reasons] == [
        ("outage_beyond_sla", "crisis"),
        ("cannot_trade", "crisis"),
        ("communication_plan_failed", "crisis"),
        ("increased_impact", "impact"),
        ("protracted_repair", "repair"),
        ("repeat_faults", "repair"),
    ]
    assert str(profile.tz) == "Europe/London"
    with pytest.raises(KeyError):
        profile.level(5)


def test_shipped_profile_reproduces_the_reseller_process() -> None:
    mappings = load_mappings(shipped_mappings_dir())
    profile = mappings.profile
    residential = profile.segment()
    assert residential is profile.segments["residential"]
    assert [(w.name, w.start, w.end) for w in residential.contact_calls] == [
        ("morning", time(9), time(12)),
        ("afternoon", time(13), time(17)),
    ]
    assert set(profile.segments) == {"residential", "reseller", "wholesale", "enterprise"}
    assert profile.segment("reseller").update_channel == "ticket"
    assert (profile.parking.days, profile.parking.confirmation_call_day) == (3, 3)
    assert profile.archive.retention_months == 12
    assert profile.carrier.stages == ("agent", "team_leader", "manager")
    assert "user_id" not in profile.carrier.required_details
    assert profile.carrier.handover_role == "customer_support_supervisor"
    assert mappings.helpdesk.person("customer_support_supervisor")


def test_shipped_holidays_are_weekdays_and_business_days_skip_them() -> None:
    hours = load_mappings(shipped_mappings_dir()).profile.business_hours
    assert len(hours.holidays) == 16
    assert all(d.weekday() < 5 for d in hours.holidays)
    assert not hours.is_business_day(date(2026, 12, 25))
    assert not hours.is_business_day(date(2026, 12, 26))  # a Saturday
    assert hours.is_business_day(date(2026, 12, 29))


def test_field_map_helpers() -> None:
    zammad = load_mappings(shipped_mappings_dir()).helpdesk
    assert isinstance(zammad, ZammadFieldMap)
    assert zammad.level_tag(2) == "escalation-l2"
    assert zammad.escalation_tags(3) == {"escalation", "escalation-l3"}
    assert zammad.uses_placeholder_customer
    with pytest.raises(KeyError):
        zammad.person("nobody")


# -- one problem each: file:line: key: message ----------------------------------------------


@dataclass(frozen=True)
class Case:
    file: str
    old: str
    new: str
    key: str
    line_needle: str  # text on the line the problem must point at (after the edit)
    message: str  # must appear in the message
    offset: int = 0  # the line is this far from the needle's line
    total: int = 1  # problems reported in all


CASES = {
    "unknown key": Case(
        "process.toml",
        'description = "Owns escalations from level 2."',
        'desription = "Owns escalations from level 2."',
        "roles.duty_manager.desription",
        "desription",
        "unknown key (expected one of name, description); did you mean 'description'?",
    ),
    "misspelt required key": Case(
        "zammad.toml",
        "note_heading = ",
        "note_heding = ",
        "carrier.note_heding",
        "note_heding",
        "unknown key (expected one of note_heading); did you mean 'note_heading'?",
        total=2,  # and carrier.note_heading is missing
    ),
    "wrong type": Case(
        "process.toml",
        "retention_months = 12",
        'retention_months = "12"',
        "archive.retention_months",
        "retention_months",
        "expected an integer, got '12'",
    ),
    "duplicate level": Case(
        "process.toml",
        'number = 3\nname = "Escalation Executive"',
        'number = 2  # copied\nname = "Escalation Executive"',
        "levels[2].number",
        "# copied",
        "duplicate level 2 (first at levels[1])",
        total=2,  # and level 3 is missing
    ),
    "levels not 1..N contiguous": Case(
        "process.toml",
        'number = 3\nname = "Escalation Executive"',
        'number = 4\nname = "Escalation Executive"',
        "levels",
        "number = 1",
        "missing level 3; level 4 is out of range",
        offset=-1,  # the first [[levels]]
    ),
    "bad time zone": Case(
        "process.toml",
        '"Europe/London"',
        '"Europe/Londn"',
        "process.time_zone",
        "Europe/Londn",
        "unknown time zone 'Europe/Londn'",
    ),
    "time window ends before it starts": Case(
        "process.toml",
        'end = "18:00"',
        'end = "07:30"',
        "business_hours.end",
        '"07:30"',
        "end 07:30 must be later than start 08:00",
    ),
    "time window not HH:MM": Case(
        "process.toml",
        'name = "afternoon", start = "13:00"',
        'name = "afternoon", start = "1pm"',
        "segments.residential.contact_calls[1].start",
        '"1pm"',
        'expected a time as "HH:MM"',
    ),
    "negative days": Case(
        "process.toml",
        "days = 3",
        "days = -3",
        "parking.days",
        "days = -3",
        "must be at least 1, got -3",
    ),
    "unknown segment": Case(
        "process.toml",
        'default_segment = "residential"',
        'default_segment = "residental"',
        "process.default_segment",
        "residental",
        "unknown segment 'residental' (expected one of residential, reseller); "
        "did you mean 'residential'?",
    ),
    "unknown owner rule": Case(
        "process.toml",
        'owner = "duty_manager"',
        'owner = "duty_manger"',
        "levels[1].owner",
        "duty_manger",
        "unknown rule 'duty_manger' (expected one of flagging_agent, unchanged, duty_manager, "
        "customer_support_supervisor, head_of_service_management); did you mean 'duty_manager'?",
    ),
    "first level keeps an unchanged owner": Case(
        "process.toml",
        'owner = "flagging_agent"',
        'owner = "unchanged"  # on level 1',
        "levels[0].owner",
        "# on level 1",
        "the first level cannot keep an 'unchanged' owner",
    ),
    "unknown role in notify": Case(
        "process.toml",
        'notify = ["head_of_service_management"]',
        'notify = ["head_of_service_mgmt"]',
        "levels[2].notify[0]",
        "head_of_service_mgmt",
        "unknown role 'head_of_service_mgmt'",
    ),
    "unknown hand-over role": Case(
        "process.toml",
        'handover_role = "customer_support_supervisor"',
        'handover_role = "supervisor"',
        "carrier.handover_role",
        "handover_role",
        "unknown role 'supervisor'",
    ),
    "role used but not mapped to a person": Case(
        "zammad.toml",
        'duty_manager = "duty.manager@example.test"\n',
        "",
        "people.duty_manager",
        "[people]",
        "role 'duty_manager' has no helpdesk user (it is used in mappings/process.toml "
        "at levels[1].owner)",
    ),
    "person for an unknown role": Case(
        "zammad.toml",
        'duty_manager = "duty.manager@example.test"',
        'duty_manager = "duty.manager@example.test"\nduty_manger = "x@example.test"',
        "people.duty_manger",
        "duty_manger",
        "unknown role 'duty_manger' (expected one of duty_manager,",
    ),
    "bad holiday date": Case(
        "process.toml",
        "    2026-12-28,",
        '    "2026-02-30",',
        "business_hours.holidays[1]",
        "2026-02-30",
        "day value is outside expected range",
    ),
    "duplicate holiday": Case(
        "process.toml",
        "    2026-12-28,",
        "    2026-12-25,\n    2026-12-28,",
        "business_hours.holidays",
        "holidays = [",
        "'2026-12-25' is listed twice",
    ),
    "confirmation call after parking": Case(
        "process.toml",
        "confirmation_call_day = 3",
        "confirmation_call_day = 4",
        "parking.confirmation_call_day",
        "confirmation_call_day",
        "confirmation_call_day 4 is after the end of parking (days = 3)",
    ),
    "duplicate reason key": Case(
        "process.toml",
        'key = "repeat_faults"',
        'key = "outage_beyond_sla"  # copied',
        "reasons[1].key",
        "# copied",
        "duplicate reason 'outage_beyond_sla' (first at reasons[0])",
    ),
    "unknown reason category": Case(
        "process.toml",
        'category = "repair"',
        'category = "repairs"',
        "reasons[1].category",
        "repairs",
        "unknown value 'repairs' (expected one of crisis, impact, repair); did you mean 'repair'?",
    ),
    "empty tag": Case(
        "zammad.toml",
        'parked = "escalation-parked"',
        'parked = ""',
        "tags.parked",
        'parked = ""',
        "a tag must not be empty",
    ),
    "tag with a comma": Case(
        "zammad.toml",
        'confirmed = "escalation-confirmed"',
        'confirmed = "escalation,confirmed"',
        "tags.confirmed",
        "escalation,confirmed",
        "contains ','",
    ),
    "tag with a star": Case(
        "process.toml",
        'legal_hold_tag = "legal-hold"',
        'legal_hold_tag = "legal*hold"',
        "archive.legal_hold_tag",
        "legal*hold",
        "contains '*'",
    ),
    "level tag without placeholder": Case(
        "zammad.toml",
        'level = "escalation-l{level}"',
        'level = "escalation-level"',
        "tags.level",
        "escalation-level",
        "must contain {level}",
    ),
    "attribute name ending in _id": Case(
        "zammad.toml",
        'original_ticket = "escalation_original"',
        'original_ticket = "escalation_original_id"',
        "fields.original_ticket",
        "escalation_original_id",
        "Zammad forbids attribute names ending in _id or _ids",
    ),
    "attribute name with capitals": Case(
        "zammad.toml",
        'rfo = "escalation_rfo"',
        'rfo = "Escalation_RFO"',
        "fields.rfo",
        "Escalation_RFO",
        "is not a Zammad attribute name",
    ),
    "attribute used twice": Case(
        "zammad.toml",
        'rfo = "escalation_rfo"',
        'rfo = "escalation_reason"',
        "fields.rfo",
        'rfo = "escalation_reason"',
        "'escalation_reason' is already used by fields.reason",
    ),
    "flag neither field nor tag": Case(
        "zammad.toml",
        'field = "escalation_requested"\ntag = "escalate"\n',
        "",
        "flag",
        "[flag]",
        "set field, tag or both",
    ),
    "body limit above Zammad's": Case(
        "zammad.toml",
        "article_body_max_chars = 1000000",
        "article_body_max_chars = 2000000",
        "limits.article_body_max_chars",
        "article_body_max_chars",
        "must be at most 1500000, got 2000000",
    ),
    "rfo level that does not exist": Case(
        "process.toml",
        "rfo_required_from_level = 2",
        "rfo_required_from_level = 5",
        "process.rfo_required_from_level",
        "rfo_required_from_level",
        "level 5 does not exist (levels are 1..3)",
    ),
    "bad role key": Case(
        "process.toml",
        "[roles.head_of_service_management]",
        "[roles.Head-Of-Service]",
        "roles.Head-Of-Service",
        "[roles.Head-Of-Service]",
        "invalid name: 'Head-Of-Service' is not a valid name",
    ),
    "unknown weekday": Case(
        "process.toml",
        '"thu", "fri"]',
        '"thu", "fri", "satu"]',
        "business_hours.days[5]",
        '"satu"',
        "unknown value 'satu' (expected one of mon, tue, wed, thu, fri, sat, sun); "
        "did you mean 'sat'?",
    ),
    "placeholder customer not an email": Case(
        "zammad.toml",
        'placeholder = "escalations-internal@example.invalid"',
        'placeholder = "escalations internal"',
        "customer.placeholder",
        "placeholder",
        "is not an email address",
    ),
}


@pytest.mark.parametrize("key", ["owner", "state", "group", "title", "priority", "customer"])
@pytest.mark.parametrize(
    ("old", "loc"),
    [
        ('level = "escalation_level"', "fields.level"),
        ('field = "escalation_requested"', "flag.field"),
    ],
)
def test_a_standard_ticket_key_is_not_a_custom_field(
    mapdir: Path, key: str, old: str, loc: str
) -> None:
    """Zammad's own columns (STANDARD_TICKET_KEYS) would be overwritten by the worker and
    read back as if they were the custom attribute (issue 10 #14)."""
    path = mapdir / "zammad.toml"
    edit(path, old, f'{old.split(" = ")[0]} = "{key}"')
    line = line_of(path, f'= "{key}"')
    message = the_problem(mapdir, f"mappings/zammad.toml:{line}: {loc}: ")
    assert message.endswith(
        f"'{key}' is a standard Zammad ticket attribute, not a custom one "
        "(name the custom attribute created for this purpose)"
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_one_problem_names_file_line_and_key(mapdir: Path, case: Case) -> None:
    path = mapdir / case.file
    edit(path, case.old, case.new)
    line = line_of(path, case.line_needle) + case.offset
    message = the_problem(mapdir, f"mappings/{case.file}:{line}: {case.key}: ", total=case.total)
    assert case.message in message


def test_toml_syntax_error(mapdir: Path) -> None:
    edit(mapdir / "process.toml", "days = 3", "days = # forgot the number")
    line = line_of(mapdir / "process.toml", "# forgot the number")
    message = the_problem(mapdir, f"mappings/process.toml:{line}: TOML syntax error: ")
    assert "(column 8)" in message


def test_toml_syntax_error_at_end_of_file(mapdir: Path) -> None:
    path = mapdir / "zammad.toml"
    path.write_text(path.read_text() + 'extra = "unterminated')  # no newline at the end
    message = the_problem(mapdir, f"mappings/zammad.toml:{line_of(path, 'extra =')}: ")
    assert message.endswith("TOML syntax error: Unterminated string (at end of file)")


def test_duplicate_key_is_a_syntax_error(mapdir: Path) -> None:
    edit(mapdir / "zammad.toml", 'open = "open"', 'open = "open"\nopen = "new"')
    the_problem(mapdir, f"mappings/zammad.toml:{line_of(mapdir / 'zammad.toml', 'new')}: ")


def test_bare_impossible_date_is_a_syntax_error(mapdir: Path) -> None:
    edit(mapdir / "process.toml", "    2026-12-28,", "    2026-02-30,")
    line = line_of(mapdir / "process.toml", "2026-02-30")
    the_problem(mapdir, f"mappings/process.toml:{line}: TOML syntax error: Invalid date")


def test_no_levels_at_all(mapdir: Path) -> None:
    path = mapdir / "process.toml"
    text = path.read_text()
    start, end = text.index("[[levels]]"), text.index("[[reasons]]")
    path.write_text(text[:start] + text[end:])
    message = the_problem(mapdir, "mappings/process.toml:1: levels: ")
    assert message.endswith("required key is missing")


def test_missing_key_points_at_its_table(mapdir: Path) -> None:
    edit(mapdir / "process.toml", "business_days = false\n", "")
    line = line_of(mapdir / "process.toml", "[parking]")
    message = the_problem(mapdir, f"mappings/process.toml:{line}: parking.business_days: ")
    assert message.endswith("required key is missing")


def test_levels_listed_out_of_order(mapdir: Path) -> None:
    path = mapdir / "process.toml"
    edit(path, 'number = 2\nname = "Escalation Owner"', 'number = 3\nname = "Escalation Owner"')
    edit(path, 'number = 3\nname = "Escalation Executive"', 'number = 2\nname = "Escalation Exec"')
    line = line_of(path, 'name = "Escalation Owner"') - 1
    message = the_problem(mapdir, f"mappings/process.toml:{line}: levels[1].number: ")
    assert "list [[levels]] in order 1..N" in message


@pytest.mark.parametrize("name", ["process.toml", "zammad.toml"])
def test_missing_file(mapdir: Path, name: str) -> None:
    (mapdir / name).unlink()
    assert problems(mapdir) == [f"mappings/{name}: file not found"]


def test_missing_directory(tmp_path: Path) -> None:
    found = problems(tmp_path / "nowhere")
    assert [p.rsplit("/", 1)[-1] for p in found] == [
        "process.toml: file not found",
        "zammad.toml: file not found",
    ]


def test_not_utf8(mapdir: Path) -> None:
    path = mapdir / "zammad.toml"
    line = line_of(path, "Escalations")
    path.write_bytes(path.read_bytes().replace(b"Escalations", b"Escalations \xff"))
    the_problem(mapdir, f"mappings/zammad.toml:{line}: not UTF-8 text")


# -- input that breaks the TOML reader itself (issue 10 #14) ---------------------------------


def prepend(path: Path, text: str) -> None:
    path.write_text(text + path.read_text(encoding="utf-8"), encoding="utf-8")


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("[" * 5000 + "]" * 5000, "arrays"),
        ("{a = " * 5000 + "}" * 5000, "inline tables"),
        ("[{a = " * 2500 + "}]" * 2500, "both"),
    ],
    ids=lambda v: v if len(v) < 20 else "",
)
def test_nesting_too_deep_for_the_reader_is_one_problem(
    mapdir: Path, value: str, what: str
) -> None:
    prepend(mapdir / "process.toml", f"nested = {value}\n")
    assert problems(mapdir) == [
        "mappings/process.toml:1: nested: "
        "nested too deeply (5000 levels of arrays or inline tables)"
    ]


def test_nesting_too_deep_names_the_line_it_gets_too_deep_on(mapdir: Path) -> None:
    # strings and comments with brackets do not count; the table of the key is named
    value = '[ "[[[", # [[[\n' + "[" * 3000 + "\n" + "[" * 3000 + "]" * 6001 + "\n"
    path = mapdir / "process.toml"
    edit(path, "[archive]\n", f"[archive]\nnested = {value}")
    line = line_of(path, "nested =") + 2
    assert problems(mapdir) == [
        f"mappings/process.toml:{line}: archive.nested: "
        "nested too deeply (6001 levels of arrays or inline tables)"
    ]


def test_integer_too_long_to_convert_is_one_problem(mapdir: Path) -> None:
    path = mapdir / "process.toml"
    edit(path, "retention_months = 12", "retention_months = " + "9" * 5000)
    line = line_of(path, "retention_months =")
    assert problems(mapdir) == [
        f"mappings/process.toml:{line}: archive.retention_months: "
        "a number with 5000 digits is too long (at most 4300)"
    ]


def test_a_long_value_is_cut_in_the_message(mapdir: Path) -> None:
    path = mapdir / "zammad.toml"
    edit(path, "article_body_max_chars = ", "article_body_max_chars = " + "9" * 4000 + "  # ")
    message = the_problem(mapdir, f"mappings/zammad.toml:{line_of(path, '9999')}: ")
    assert message.endswith(
        f"limits.article_body_max_chars: must be at most 1500000, got {'9' * 40}… (4000 characters)"
    )


# -- many problems at once ------------------------------------------------------------------


def test_every_problem_is_reported_at_once(mapdir: Path) -> None:
    process, zammad = mapdir / "process.toml", mapdir / "zammad.toml"
    edit(process, '"Europe/London"', '"Mars/Olympus"')  # [process] fails its own validation
    edit(process, 'owner = "duty_manager"', 'owner = "duty_manger"')  # still cross-checked
    edit(process, "retention_months = 12", "retention_months = 0")
    edit(process, "business_days = false", "business_days = false\nbuisness_days = true")
    edit(zammad, 'original_ticket = "escalation_original"', 'original_ticket = "orig_ids"')
    edit(zammad, 'escalated = "escalated"', 'escalated = "a,b"')
    edit(zammad, 'head_of_service_management = "head.service@example.test"\n', "")
    found = problems(mapdir)
    expected = [
        (process, "Mars/Olympus", "process.time_zone"),
        (process, "retention_months", "archive.retention_months"),
        (process, "buisness_days", "parking.buisness_days"),
        (process, "duty_manger", "levels[1].owner"),
        (zammad, "orig_ids", "fields.original_ticket"),
        (zammad, '"a,b"', "tags.escalated"),
        (zammad, "[people]", "people.head_of_service_management"),
    ]
    where = sorted(
        (path.name != "process.toml", line_of(path, needle), f"{path}", key)
        for path, needle, key in expected
    )
    prefixes = [f"{path}:{line}: {key}: " for _, line, path, key in where]
    assert len(found) == len(prefixes), found
    for problem, prefix in zip(found, prefixes, strict=True):  # each file in line order
        assert problem.startswith(prefix), (prefix, found)


def test_syntax_error_in_one_file_does_not_hide_the_other(mapdir: Path) -> None:
    edit(mapdir / "process.toml", "[parking]", "[parking")
    edit(mapdir / "zammad.toml", 'closed = "closed"', 'closed = ""')
    found = problems(mapdir)
    assert len(found) == 2, found
    assert found[0].startswith("mappings/process.toml:")
    assert "TOML syntax error" in found[0]
    assert found[1].startswith(f"mappings/zammad.toml:{line_of(mapdir / 'zammad.toml', 'closed')}")


# -- the models on their own ----------------------------------------------------------------


def test_models_are_frozen() -> None:
    mappings = load_mappings(FIXTURES)
    with pytest.raises(ValidationError):
        mappings.profile.parking.days = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        mappings.helpdesk.limits.attachment_max_bytes = 1  # type: ignore[misc]


def test_profile_built_in_code_runs_the_consistency_checks() -> None:
    data = tomllib.loads((FIXTURES / "process.toml").read_text())
    data["levels"][1]["owner"] = "nobody"
    with pytest.raises(ValidationError, match=r"levels\[1\]\.owner: unknown rule 'nobody'"):
        ProcessProfile.model_validate(data)


def test_field_map_built_in_code_runs_the_consistency_checks() -> None:
    data = tomllib.loads((FIXTURES / "zammad.toml").read_text())
    data["flag"]["tag"] = "escalated"
    with pytest.raises(ValidationError, match="'escalated' is also used by tags.escalated"):
        ZammadFieldMap.model_validate(data)


# -- the line index -------------------------------------------------------------------------


def test_key_line_index_handles_toml_forms() -> None:
    text = "\n".join(
        [
            'top = "x"  # 1',
            "dotted.inner.key = 2",
            '"quoted key" = 3',
            "[a]",
            "b = [",
            "  1,",
            "  { c = 1, 'd' = 2 },",
            "]",
            "[[arr]]  # 9",
            's = """',
            "multi [not a table]",
            '"""',
            "[[arr]]",
            "x = 1",
            "[[arr.sub]]",
            "y = 2",
            "[arr.tbl]",
            "z = 3",
            "[[arr]]",
        ]
    )
    tomllib.loads(text)  # the index is only built from valid TOML
    index = KeyLineIndex(text)
    assert index.line_for(("top",)) == 1
    assert index.line_for(("dotted", "inner", "key")) == 2
    assert index.line_for(("dotted",)) == 2
    assert index.line_for(("quoted key",)) == 3
    assert index.line_for(("a", "b", 0)) == 6
    assert index.line_for(("a", "b", 1, "d")) == 7
    assert index.line_for(("arr", 0, "s")) == 10
    assert index.line_for(("arr", 1, "x")) == 14
    assert index.line_for(("arr", 1, "sub", 0, "y")) == 16
    assert index.line_for(("arr", 1, "tbl", "z")) == 18
    assert index.line_for(("arr", 2)) == 19
    assert index.line_for(("arr", 2, "missing")) == 19
    assert index.line_for(("a", "missing", "deeper")) == 4
    assert index.line_for(("nowhere",)) == 1


# -- docs ---------------------------------------------------------------------------------


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    """(dotted path, field name) for every field of the models inside a top-level model."""
    out: list[tuple[str, str]] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if prefix:  # top-level fields are sections, checked by their [header]
            out.append((path, name))
        for inner in _models_in(info.annotation):
            out.extend(_fields(inner, f"{path}."))
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


@pytest.mark.parametrize("model", [ProcessProfile, ZammadFieldMap])
def test_every_mapping_key_is_documented(model: type[BaseModel]) -> None:
    readme = README.read_text(encoding="utf-8")
    fields = _fields(model)
    assert len(fields) > 10
    missing = [path for path, name in fields if f"`{name}`" not in readme]
    assert not missing, f"not documented in {README}: {missing}"
    for name, info in model.model_fields.items():
        origin = get_origin(info.annotation)
        header = f"[[{name}]]" if origin is tuple else f"[{name}" if origin is dict else f"[{name}]"
        assert f"`{header}" in readme, f"no section for {header} in {README}"
