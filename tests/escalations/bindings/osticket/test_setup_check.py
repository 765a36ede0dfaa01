"""The comparisons ``check --live`` and ``provision`` share on osTicket (``setup_check``),
without a server: what osTicket has is given as ``Found``, as ``_setup`` would read it."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from connector.base import Capability
from connector.errors import Misconfigured, Unauthorized
from connector.osticket import CAPABILITIES, PLUGIN_CAPABILITIES
from connector.osticket._setup import (
    READ_TABLES,
    FormField,
    Grants,
    PluginRegistry,
    Setup,
    Topic,
)
from escalations.bindings.osticket.setup_check import Found, Step, plan
from escalations.mappings import Mappings, load_mappings
from escalations.settings import shipped_mappings_dir

ALL = CAPABILITIES | PLUGIN_CAPABILITIES
DB = "osticket"


def _field(form_id: int, name: str, kind: str, **config: str) -> FormField:
    title = "Ticket Details" if form_id == 2 else "Escalation"
    form_type = "T" if form_id == 2 else "G"
    return FormField(form_id, form_type, title, name, name, kind, True, True, config)


SEGMENTS = "residential:Residential\nreseller:Reseller\nwholesale:Wholesale\nenterprise:Ent"
REASONS = "\n".join(
    f"{k}:{k}"
    for k in (
        "outage_beyond_sla",
        "cannot_trade",
        "communication_plan_failed",
        "increased_impact",
        "protracted_repair",
        "repeat_faults",
    )
)


def _complete() -> Found:
    """An osTicket with everything the shipped osticket.toml names."""
    return Found(
        grants=Grants("'ro'@'10.0.0.5'", DB, frozenset(), frozenset({"SELECT"}), {}),
        setup=Setup(
            topics={"Escalation": Topic(12, "Escalation", True, 3, 1, (2, 7))},
            departments={3: "Maintenance"},
            teams={1: "Level I Support"},
            fields=(
                _field(2, "escalation_reason", "choices", choices=REASONS),
                _field(2, "customer_segment", "choices", choices=SEGMENTS),
                _field(2, "escalation_callback_at", "text"),
                _field(7, "escalation_key", "text"),
                _field(7, "escalation_level", "text"),
                _field(7, "origin_ticket", "text"),
                _field(7, "carrier_route_failed", "bool"),
                _field(7, "escalation_rfo", "memo"),
            ),
            plugin=PluginRegistry(installed=True, enabled=True, instance_enabled=True),
        ),
        states={
            "Open": "open",
            "Closed": "closed",
            "Escalate": "open",
            "Parked": "open",
            "Confirmed": "closed",
            "Not satisfied": "open",
        },
        agents={
            ref: (True, True)
            for ref in (
                "duty.manager@fused.example",
                "cs.supervisor@fused.example",
                "lloyd.foley@jt.example",
                "sara.mccarthy@jt.example",
            )
        },
    )


def _steps(
    found: Found, mappings: Mappings | None = None, caps: frozenset[Capability] = ALL
) -> list[Step]:
    pings: list[int] = []
    steps = plan(
        mappings or load_mappings(shipped_mappings_dir(), "osticket"),
        found,
        capabilities=caps,
        ping=lambda: pings.append(1),
        worker_ip="10.0.0.5",
    )
    assert pings == ([1] if Capability.ADD_NOTE in caps else [])
    return steps


def _todo(steps: list[Step]) -> list[Step]:
    return [s for s in steps if not s.done]


def test_everything_in_place_is_all_ok() -> None:
    steps = _steps(_complete())
    assert _todo(steps) == []
    assert all(s.line().startswith("ok    ") for s in steps)
    assert any("department 'Maintenance', team 'Level I Support'" in s.what for s in steps)
    # one step per object: account, 6 statuses, topic, 8 fields, 4 agents, plugin, key
    assert len(steps) == 1 + 6 + 1 + 8 + 4 + 1 + 1


def test_a_renamed_status_in_the_mapping_gives_exactly_that_one_step(tmp_path: Path) -> None:
    directory = tmp_path / "mappings"
    shutil.copytree(shipped_mappings_dir(), directory)
    toml = directory / "osticket.toml"
    text = toml.read_text()
    assert text.count('parked = "Parked"') == 1
    toml.write_text(text.replace('parked = "Parked"', 'parked = "On hold"'))

    (step,) = _todo(_steps(_complete(), load_mappings(directory, "osticket")))

    assert step.problems == (f"{toml}: statuses.parked: status 'On hold' not found",)
    assert step.line() == (
        "todo  ticket status 'On hold', state Open (statuses.parked): not found; Admin Panel → "
        "Manage → Lists → Ticket Status → Add New Item: Value 'On hold', then its Properties: "
        "State 'Open'"
    )


def test_a_status_of_the_wrong_state_names_the_state_to_set() -> None:
    found = _complete()
    found = replace(found, states={**found.states, "Parked": "closed"})
    (step,) = _todo(_steps(found))
    assert "its state is 'closed'" in step.line()
    assert "→ 'Parked' → Properties: State 'Open'" in step.fix


def test_a_field_of_the_wrong_type_on_a_form_the_topic_does_not_attach() -> None:
    found = _complete()
    fields = tuple(
        replace(f, form_id=9, form_title="Other", type="memo") if f.name == "escalation_key" else f
        for f in found.setup.fields
    )
    (step,) = _todo(_steps(replace(found, setup=replace(found.setup, fields=fields))))
    assert [p.split(": ", 2)[2] for p in step.problems] == [
        "form field 'escalation_key' is on the form 'Other', which the help topic 'Escalation' "
        "does not attach",
        "form field 'escalation_key' is of type 'memo' (expected 'text')",
    ]
    assert "Help Topics → 'Escalation' → Forms: add 'Other'" in step.fix
    assert "Forms → 'Other' → the field 'escalation_key': Type 'Short Answer'" in step.fix


def test_a_choices_field_lacking_a_segment_key_names_it() -> None:
    found = _complete()
    fields = tuple(
        replace(f, configuration={"choices": "residential:R\nreseller:R"})
        if f.name == "customer_segment"
        else f
        for f in found.setup.fields
    )
    (step,) = _todo(_steps(replace(found, setup=replace(found.setup, fields=fields))))
    assert step.why == "no choice wholesale, enterprise"


def test_a_write_privilege_or_a_missing_select_gives_the_sql_to_run() -> None:
    found = _complete()
    writes = replace(found.grants, schema_privileges=frozenset({"SELECT", "UPDATE"}))
    (step,) = _todo(_steps(replace(found, grants=writes)))
    assert step.fix == (
        "on the database server, as its admin: REVOKE ALL PRIVILEGES, GRANT OPTION FROM "
        "'ro'@'10.0.0.5'; GRANT SELECT ON `osticket`.* TO 'ro'@'10.0.0.5';"
    )
    narrow = replace(
        found.grants,
        schema_privileges=frozenset(),
        table_privileges={"ost_ticket": frozenset({"SELECT"})},
    )
    (step,) = _todo(_steps(replace(found, grants=narrow)))
    assert "lacks SELECT on osticket.ost_ticket_status" in step.why
    assert "osticket.ost_ticket," not in step.why


@pytest.mark.parametrize(
    ("registry", "first"),
    [
        (PluginRegistry(False, False, False), "copy plugins/osticket/escalation-api"),
        (PluginRegistry(True, False, False), "tick it → More → Enable"),
        (PluginRegistry(True, True, False), "open it → Instances → Add New Instance"),
    ],
)
def test_without_the_plugin_the_steps_left_start_where_the_admin_stopped(
    registry: PluginRegistry, first: str
) -> None:
    found = _complete()
    steps = _steps(replace(found, setup=replace(found.setup, plugin=registry)), caps=CAPABILITIES)
    plugin, key = _todo(steps)
    assert plugin.fix.startswith(first)
    assert [p.split()[1] for p in plugin.problems] == ["add_note", "update_ticket", "links"]
    # the key cannot be proved without the plugin: a step, not a check --live problem
    assert key.unverified
    assert key.problems == ()
    assert "IP Address '10.0.0.5'" in key.fix


def test_a_key_the_plugin_refuses_is_a_step() -> None:
    def refused() -> object:
        raise Unauthorized("Valid API key required")

    steps = plan(
        load_mappings(shipped_mappings_dir(), "osticket"),
        _complete(),
        capabilities=ALL,
        ping=refused,
        worker_ip="10.0.0.5",
    )
    (step,) = _todo(steps)
    assert "refused the API key" in step.problems[0]
    assert "IP Address '10.0.0.5'" in step.fix


def _key_step(answer: object) -> Step:
    def ping() -> object:
        if isinstance(answer, Exception):
            raise answer
        return answer

    steps = plan(
        load_mappings(shipped_mappings_dir(), "osticket"),
        _complete(),
        capabilities=ALL,
        ping=ping,
        worker_ip="10.0.0.5",
    )
    (step,) = _todo(steps)
    assert "GET /api/escalation/ping" in step.what
    return step


FULL = ["assign", "edit", "close", "link"]


def test_a_key_that_cannot_create_tickets_is_a_step() -> None:
    """Review of issue 17, defect 3: provision said "ok" and every create then failed."""
    step = _key_step({"ok": True, "can_create_tickets": False, "bot_departments": {"3": FULL}})
    assert step.problems == (
        "the escalation-api plugin reports that the API key cannot create tickets (Can Create "
        "Tickets is off): every escalation ticket's create would be refused",
    )
    assert "Can Create Tickets on" in step.fix


def test_a_bot_agent_lacking_a_permission_in_the_topics_department_is_a_step() -> None:
    answer = {"ok": True, "bot_agent": "bot", "can_create_tickets": True}
    step = _key_step({**answer, "bot_departments": {"3": ["assign", "edit"]}})
    assert step.problems == (
        "the escalation-api plugin's bot agent 'bot' lacks close, link in the department "
        "'Maintenance' of the escalation help topic (its role there)",
    )
    step = _key_step({**answer, "bot_departments": {"1": FULL}})
    assert "has no access to the department 'Maintenance'" in step.problems[0]
    assert "a role with Assign, Edit, Close and Link" in step.fix


def test_a_plugin_instance_set_up_wrong_is_not_called_a_refused_key() -> None:
    step = _key_step(Misconfigured('escalation-api: bot agent "bot" is not an active agent'))
    assert step.problems[0].startswith("the escalation-api plugin instance is set up wrong: ")
    assert "refused the API key" not in step.problems[0]


def test_an_account_without_select_on_the_topic_forms_gets_the_grant_step_only() -> None:
    """The older, narrower GRANT list lacked ost_help_topic_form and ost_team: the fields'
    placement is then not checked, and the grant step names the two tables."""
    found = _complete()
    narrow = replace(
        found.grants,
        schema_privileges=frozenset(),
        table_privileges={
            f"ost_{t}": frozenset({"SELECT"})
            for t in READ_TABLES
            if t not in ("team", "help_topic_form")
        },
    )
    topics = {"Escalation": replace(found.setup.topics["Escalation"], form_ids=None)}
    setup = replace(found.setup, topics=topics, teams={})
    (step,) = _todo(_steps(replace(found, grants=narrow, setup=setup)))
    assert step.why == "lacks SELECT on osticket.ost_team, osticket.ost_help_topic_form"
    assert step.fix.endswith("GRANT SELECT ON `osticket`.* TO 'ro'@'10.0.0.5';")


def test_a_field_agents_cannot_edit_is_a_step() -> None:
    found = _complete()
    fields = tuple(
        replace(f, agents_edit=False) if f.name == "escalation_level" else f
        for f in found.setup.fields
    )
    (step,) = _todo(_steps(replace(found, setup=replace(found.setup, fields=fields))))
    assert step.why == "agents cannot see or edit it"
    assert step.fix.endswith("→ Config → Settings: Visible and Editable for agents")
