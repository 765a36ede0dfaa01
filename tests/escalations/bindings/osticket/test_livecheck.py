"""The osTicket live check against the real osTicket 1.18, with the escalation-api plugin
(installed by the test setup) and without it (disabled in the admin panel for the test)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from connector.base import Capability
from escalations.bindings.osticket.field_map import OsTicketFieldMap
from escalations.bindings.osticket.livecheck import NEEDED_BY, live_check
from escalations.mappings import load_mappings
from escalations.settings import shipped_mappings_dir
from tests.connector.osticket.real import RealOsTicket

pytestmark = pytest.mark.timeout(120)


def _others(problems: list[str]) -> list[str]:
    others = [p for p in problems if not p.startswith("capability ")]
    # the test osTicket has the flag status, the topic and its form (with the RFO), the
    # statuses and the agents (real.py), not the Ticket Details fields of the flag
    assert not any("flag.status" in p or "topics.escalation" in p for p in others)
    assert not any("statuses." in p or "people." in p for p in others)
    assert not any("fields.escalation_key" in p or "fields.route_failed" in p for p in others)
    assert not any("fields.rfo" in p for p in others)
    assert any(
        "fields.reason: no form field with variable name 'escalation_reason'" in p for p in others
    )
    return others


def test_without_the_plugin_lists_exactly_the_missing_capabilities(
    without_plugin: RealOsTicket,
) -> None:
    adapter = without_plugin.adapter()
    problems = live_check(adapter, load_mappings(shipped_mappings_dir(), "osticket"))

    missing = [p for p in problems if p.startswith("capability ")]
    assert [p.split()[1] for p in missing] == [
        Capability.ADD_NOTE.value,
        Capability.UPDATE_TICKET.value,
        Capability.LINKS.value,
    ]
    assert all("escalation-api plugin is not enabled" in p for p in missing)
    assert list(NEEDED_BY) == [Capability.ADD_NOTE, Capability.UPDATE_TICKET, Capability.LINKS]
    assert not any("plugin" in p for p in _others(problems))


def test_with_the_plugin_lists_none_and_the_plugin_answers(osticket: RealOsTicket) -> None:
    adapter = osticket.adapter()
    problems = live_check(adapter, load_mappings(shipped_mappings_dir(), "osticket"))

    assert [p for p in problems if p.startswith("capability ")] == []
    assert not any("plugin" in p for p in _others(problems))


def test_with_the_plugin_a_key_bound_elsewhere_is_named(osticket: RealOsTicket) -> None:
    """The one check core osTicket could not make: the key works from this address."""
    (key,) = osticket.admin_sql("SELECT id FROM ost_api_key WHERE apikey=%s", (osticket.api_key,))
    osticket.admin_sql("UPDATE ost_api_key SET ipaddr='192.0.2.1' WHERE id=%s", (key["id"],))
    try:
        problems = live_check(osticket.adapter(), load_mappings(shipped_mappings_dir(), "osticket"))
    finally:
        osticket.admin_sql("UPDATE ost_api_key SET ipaddr='127.0.0.1' WHERE id=%s", (key["id"],))
    (refused,) = [p for p in problems if "plugin" in p]
    assert "refused the API key" in refused
    assert "Valid API key required" in refused


def test_with_the_plugin_a_key_that_cannot_create_tickets_is_named(osticket: RealOsTicket) -> None:
    """Review of issue 17, defect 3: the check passed, and every create then failed."""
    key = (osticket.api_key,)
    osticket.admin_sql("UPDATE ost_api_key SET can_create_tickets=0 WHERE apikey=%s", key)
    try:
        problems = live_check(osticket.adapter(), load_mappings(shipped_mappings_dir(), "osticket"))
    finally:
        osticket.admin_sql("UPDATE ost_api_key SET can_create_tickets=1 WHERE apikey=%s", key)
    (refused,) = [p for p in problems if "plugin" in p]
    assert "the API key cannot create tickets" in refused


def _check_live(osticket: RealOsTicket, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return _cli(osticket, tmp_path, "check", "--live")


@pytest.mark.parametrize("command", [("run", "--once"), ("check", "--live")], ids=["run", "check"])
def test_a_wrong_database_password_names_the_database_account_not_the_token(
    osticket: RealOsTicket, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Review of issue 17, defects 4 and 8: ``run`` said "the helpdesk refused the token …
    check ESCALATIONS_HELPDESK_TOKEN"; ``check --live`` said "refused the account" twice."""
    wrong = RealOsTicket({**osticket.env, "OSTICKET_DB_PASSWORD": "wrong-password"})
    proc = _cli(wrong, tmp_path, *command)
    assert proc.returncode == 78, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if "refused the account" in line]
    assert f"refused the account '{osticket.env['OSTICKET_DB_USER']}' (Access denied" in line
    assert "ESCALATIONS_HELPDESK_DB_PASSWORD (or the helpdesk-db-password credential)" in line
    assert line.count("refused the account") == 1
    assert "ESCALATIONS_HELPDESK_TOKEN" not in proc.stderr
    assert "the helpdesk refused the token" not in proc.stderr
    assert "escalations provision" not in proc.stderr  # it has no step when nothing was read


def _cli(osticket: RealOsTicket, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATIONS_")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    e = osticket.env
    env.update(
        ESCALATIONS_HELPDESK="osticket",
        ESCALATIONS_HELPDESK_URL=osticket.url,
        ESCALATIONS_HELPDESK_TOKEN=osticket.api_key,
        ESCALATIONS_HELPDESK_DB_HOST=e["OSTICKET_DB_HOST"],
        ESCALATIONS_HELPDESK_DB_PORT=e["OSTICKET_DB_PORT"],
        ESCALATIONS_HELPDESK_DB_USER=e["OSTICKET_DB_USER"],
        ESCALATIONS_HELPDESK_DB_PASSWORD=e["OSTICKET_DB_PASSWORD"],
        ESCALATIONS_STATE_DIR=str(tmp_path),
    )
    return subprocess.run(
        [sys.executable, "-m", "escalations", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _capability_lines(stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if "live: capability " in line]
    return [line.split("live: capability ")[1].split()[0] for line in lines]


def test_check_live_without_the_plugin_names_them_and_exits_78(
    without_plugin: RealOsTicket, tmp_path: Path
) -> None:
    proc = _check_live(without_plugin, tmp_path)
    assert proc.returncode == 78, proc.stderr
    assert _capability_lines(proc.stderr) == ["add_note", "update_ticket", "links"]
    assert "Traceback" not in proc.stderr


def test_check_live_with_the_plugin_names_no_capability(
    osticket: RealOsTicket, tmp_path: Path
) -> None:
    proc = _check_live(osticket, tmp_path)
    # still 78: the shipped mappings name Ticket Details fields this osTicket lacks
    assert proc.returncode == 78, proc.stderr
    assert "fields.reason" in proc.stderr
    assert _capability_lines(proc.stderr) == []
    assert "Traceback" not in proc.stderr


def test_a_status_missing_or_of_the_wrong_state_is_named(osticket: RealOsTicket) -> None:
    mappings = load_mappings(shipped_mappings_dir(), "osticket")
    fieldmap = mappings.helpdesk
    assert isinstance(fieldmap, OsTicketFieldMap)
    statuses = fieldmap.statuses.model_copy(
        update={"confirmed": "No such status", "parked": "Resolved"}
    )
    edited = replace(mappings, helpdesk=fieldmap.model_copy(update={"statuses": statuses}))
    problems = live_check(osticket.adapter(), edited)
    assert any("statuses.confirmed: status 'No such status' not found" in p for p in problems)
    assert any(
        "statuses.parked: status 'Resolved' is of state 'closed' (expected 'open')" in p
        for p in problems
    )
    assert not any("statuses.not_satisfied" in p or "statuses.open" in p for p in problems)
