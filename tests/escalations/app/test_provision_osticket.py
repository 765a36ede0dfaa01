"""``escalations provision`` on the real osTicket 1.18 (``tests/connector/osticket/real.py``):
the admin's checklist before the steps are done (listed, exit 78), after (all ok, exit 0),
with nothing written in osTicket either way.

The before/after test names objects of its own (a suffix on every name in osticket.toml), so it
starts from none of them whatever the session's other tests set up, then does the steps as the
test setup does them (osTicket's own database account) and runs provision again."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from escalations.settings import shipped_mappings_dir
from tests.connector.osticket.conftest import osticket, without_plugin
from tests.connector.osticket.real import AGENT_OPTIONAL, RealOsTicket

__all__ = ["osticket", "without_plugin"]

pytestmark = pytest.mark.timeout(180)

WATCHED = (
    "ost_help_topic",
    "ost_help_topic_form",
    "ost_ticket_status",
    "ost_form",
    "ost_form_field",
    "ost_staff",
    "ost_plugin",
    "ost_plugin_instance",
    "ost_api_key",
)
"""What an admin's steps change: provision must leave them as they are."""


def _provision(
    server: RealOsTicket, tmp_path: Path, mappings: Path | None = None, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATIONS_")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    e = server.env
    env.update(
        ESCALATIONS_HELPDESK="osticket",
        ESCALATIONS_HELPDESK_URL=server.url,
        ESCALATIONS_HELPDESK_TOKEN=server.api_key,
        ESCALATIONS_HELPDESK_DB_HOST=e["OSTICKET_DB_HOST"],
        ESCALATIONS_HELPDESK_DB_PORT=e["OSTICKET_DB_PORT"],
        ESCALATIONS_HELPDESK_DB_USER=e["OSTICKET_DB_USER"],
        ESCALATIONS_HELPDESK_DB_PASSWORD=e["OSTICKET_DB_PASSWORD"],
        ESCALATIONS_STATE_DIR=str(tmp_path / "state"),
        ESCALATIONS_MAPPINGS_DIR=str(mappings or shipped_mappings_dir()),
    )
    return subprocess.run(
        [sys.executable, "-m", "escalations", "provision", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _checksums(server: RealOsTicket) -> dict[str, object]:
    rows = server.admin_sql(f"CHECKSUM TABLE {', '.join(WATCHED)}")
    return {str(r["Table"]): r["Checksum"] for r in rows}


def _lines(proc: subprocess.CompletedProcess[str], kind: str) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith(kind + "  ")]


def _own_mappings(tmp_path: Path, tag: str) -> Path:
    """The shipped mappings with every osTicket name made this test's own."""
    directory = tmp_path / "mappings"
    shutil.copytree(shipped_mappings_dir(), directory)
    toml = directory / "osticket.toml"
    text = toml.read_text()
    for name in ("Escalate", "Escalation", "Parked", "Confirmed", "Not satisfied"):
        text = text.replace(f'= "{name}"', f'= "{name} {tag}"')
    text = re.sub(r'^(\w+) = "([a-z_]+)"$', rf'\1 = "\2_{tag}"', text, flags=re.MULTILINE)
    text = re.sub(r'= "([a-z.]+)@', rf'= "\1.{tag}@', text)
    toml.write_text(text)
    return directory


def _do_the_steps(server: RealOsTicket, tag: str) -> None:
    """What the checklist asks, done as the test setup does it (``real.py``)."""
    sql = server.admin_sql
    for name, state in (("Escalate", "open"), ("Parked", "open"), ("Confirmed", "closed")):
        sql(
            "INSERT INTO ost_ticket_status (name, state, mode, flags, sort, properties, created, "
            "updated) VALUES (%s, %s, 1, 0, 20, '{}', NOW(), NOW())",
            (f"{name} {tag}", state),
        )
    sql(
        "INSERT INTO ost_ticket_status (name, state, mode, flags, sort, properties, created, "
        "updated) VALUES (%s, 'open', 1, 0, 20, '{}', NOW(), NOW())",
        (f"Not satisfied {tag}",),
    )
    sql(
        "INSERT INTO ost_form (type, flags, title, name, created, updated) "
        "VALUES ('G', 1, %s, '', NOW(), NOW())",
        (f"Escalation {tag}",),
    )
    (form,) = sql("SELECT id FROM ost_form WHERE title=%s", (f"Escalation {tag}",))
    segments = '{"choices": "residential:R\\nreseller:R\\nwholesale:W\\nenterprise:E"}'
    reasons = (
        '{"choices": "outage_beyond_sla:a\\ncannot_trade:b\\ncommunication_plan_failed:c\\n'
        'increased_impact:d\\nprotracted_repair:e\\nrepeat_faults:f"}'
    )
    fields = (
        ("escalation_key", "text", "{}"),
        ("escalation_level", "text", "{}"),
        ("origin_ticket", "text", "{}"),
        ("carrier_route_failed", "bool", "{}"),
        ("escalation_rfo", "memo", "{}"),
        ("escalation_reason", "choices", reasons),
        ("customer_segment", "choices", segments),
        ("escalation_callback_at", "text", "{}"),
    )
    for sort, (name, kind, config) in enumerate(fields, start=1):
        sql(
            "INSERT INTO ost_form_field (form_id, flags, type, label, name, configuration, sort, "
            "created, updated) VALUES (%s, %s, %s, %s, %s, %s, %s, NOW(), NOW())",
            (form["id"], AGENT_OPTIONAL, kind, name, f"{name}_{tag}", config, sort),
        )
    sql(
        "INSERT INTO ost_help_topic (topic_pid, ispublic, noautoresp, flags, dept_id, topic, "
        "created, updated) VALUES (0, 0, 1, 2, 3, %s, NOW(), NOW())",
        (f"Escalation {tag}",),
    )
    (topic,) = sql("SELECT topic_id FROM ost_help_topic WHERE topic=%s", (f"Escalation {tag}",))
    sql(
        "INSERT INTO ost_help_topic_form (topic_id, form_id, sort) VALUES (%s, 2, 1), (%s, %s, 2)",
        (topic["topic_id"], topic["topic_id"], form["id"]),
    )
    for user in ("duty.manager", "cs.supervisor", "lloyd.foley", "sara.mccarthy"):
        domain = "jt.example" if user in ("lloyd.foley", "sara.mccarthy") else "fused.example"
        sql(
            "INSERT INTO ost_staff (dept_id, role_id, username, firstname, lastname, email, "
            "signature, isactive, permissions, created, updated) "
            "VALUES (3, 1, %s, 'P', 'V', %s, '', 1, '{}', NOW(), NOW())",
            (f"{user}.{tag}", f"{user}.{tag}@{domain}"),
        )


def test_before_the_steps_they_are_listed_and_after_them_all_is_ok(
    osticket: RealOsTicket, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    mappings = _own_mappings(tmp_path, tag)
    before = _checksums(osticket)

    listed = _provision(osticket, tmp_path, mappings, "--dry-run")

    assert listed.returncode == 78, listed.stderr
    assert "Traceback" not in listed.stderr
    todo = _lines(listed, "todo")
    # 4 statuses (flag, parked, confirmed, not satisfied), the topic, 8 fields, 4 agents
    assert len(todo) == 17, listed.stdout
    assert all(tag in line for line in todo)
    assert (
        f"todo  ticket status 'Parked {tag}', state Open (statuses.parked): not found; Admin "
        f"Panel → Manage → Lists → Ticket Status → Add New Item: Value 'Parked {tag}', then its "
        "Properties: State 'Open'"
    ) in todo
    assert any(
        line.startswith(f"todo  help topic 'Escalation {tag}' (topics.escalation): not found")
        for line in todo
    )
    assert any(f"Type 'Checkbox', Variable 'carrier_route_failed_{tag}'" in t for t in todo)
    assert any(f"Email 'duty.manager.{tag}@fused.example'" in t for t in todo)
    assert [line.split("  ", 1)[1].strip().split(" (")[0] for line in _lines(listed, "ok")] == [
        f"read-only database account '{osticket.env['OSTICKET_DB_USER']}'@'127.0.0.1'",
        "ticket status 'Open', state Open",
        "ticket status 'Closed', state Closed",
        "escalation-api plugin installed, enabled, with an active instance",
        "API key accepted from this worker",
    ]
    assert listed.stdout.splitlines()[-1].startswith(
        "provision: osTicket: 5 of 22 in place, 17 step(s) left for an admin"
    )
    assert _provision(osticket, tmp_path, mappings).stdout == listed.stdout  # same without it
    assert _checksums(osticket) == before  # nothing written

    _do_the_steps(osticket, tag)
    done = _provision(osticket, tmp_path, mappings)

    assert done.returncode == 0, done.stdout + done.stderr
    assert _lines(done, "todo") == []
    assert len(_lines(done, "ok")) == 22
    assert f"ok    help topic 'Escalation {tag}' (topics.escalation; department " in done.stdout
    assert done.stdout.splitlines()[-1] == "provision: osTicket: all 22 in place; nothing to do"


def test_after_the_test_setup_only_the_fields_it_leaves_out_remain(
    osticket: RealOsTicket, tmp_path: Path
) -> None:
    """The test setup does every step but the three Ticket Details fields of the flag."""
    proc = _provision(osticket, tmp_path)
    assert proc.returncode == 78, proc.stderr
    assert [line.split("(fields.")[1].split(")")[0] for line in _lines(proc, "todo")] == [
        "reason",
        "segment",
        "callback_at",
    ]
    assert len(_lines(proc, "ok")) == 19


def test_without_the_plugin_its_remaining_steps_and_the_key_are_listed(
    without_plugin: RealOsTicket, tmp_path: Path
) -> None:
    proc = _provision(without_plugin, tmp_path)
    assert proc.returncode == 78, proc.stderr
    plugin, key = [line for line in _lines(proc, "todo") if "(fields." not in line]
    assert plugin.startswith("todo  escalation-api plugin installed, enabled, with an active")
    assert ": installed, not enabled; tick it → More → Enable; open it → Instances" in plugin
    assert "not verifiable before the plugin is enabled" in key
    assert "IP Address '127.0.0.1'" in key


def test_user_errors_are_one_line(osticket: RealOsTicket, tmp_path: Path) -> None:
    proc = _provision(osticket, tmp_path, None, "--webhook-url", "https://w.example/hook")
    assert proc.returncode == 78
    assert proc.stderr.strip().splitlines()[-1] == (
        "escalations: --webhook-url: Zammad's only (osTicket has no webhook to create)"
    )
    wrong = RealOsTicket({**osticket.env, "OSTICKET_DB_PASSWORD": "wrong"})
    proc = _provision(wrong, tmp_path)
    assert proc.returncode == 78
    assert "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if "refused the account" in line]
    assert f"refused the account '{osticket.env['OSTICKET_DB_USER']}' (" in line
    assert "check ESCALATIONS_HELPDESK_DB_USER and ESCALATIONS_HELPDESK_DB_PASSWORD" in line
    assert line.count("refused the account") == 1  # was said twice
    assert proc.stdout == ""
