"""The osTicket live check against the real osTicket 1.18 without the plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from connector.base import Capability
from escalations.bindings.osticket.livecheck import NEEDED_BY, live_check
from escalations.mappings import load_mappings
from escalations.settings import shipped_mappings_dir
from tests.connector.osticket.real import RealOsTicket


def test_lists_exactly_the_missing_capabilities_and_what_osticket_lacks(
    osticket: RealOsTicket,
) -> None:
    adapter = osticket.adapter()
    mappings = load_mappings(shipped_mappings_dir(), "osticket")
    problems = live_check(adapter, mappings)

    missing = [p for p in problems if p.startswith("capability ")]
    assert [p.split()[1] for p in missing] == [
        cap.value for cap in NEEDED_BY if cap not in adapter.capabilities
    ]
    assert {p.split()[1] for p in missing} == {
        Capability.ADD_NOTE.value,
        Capability.UPDATE_TICKET.value,
        Capability.LINKS.value,
        Capability.SUBSCRIBE.value,
        Capability.HISTORY.value,
    }
    others = [p for p in problems if not p.startswith("capability ")]
    # the test osTicket has the flag status, the topic and its form (real.py), not the rest
    assert not any("flag.status" in p or "topics.escalation" in p for p in others)
    assert any("statuses.parked: status 'Parked' not found" in p for p in others)
    assert not any("fields.escalation_key" in p for p in others)
    assert any("fields.rfo: no form field with variable name 'escalation_rfo'" in p for p in others)
    assert any(
        "people.duty_manager: agent 'duty.manager@fused.example' not found" in p for p in others
    )


def test_check_live_names_them_and_exits_78(osticket: RealOsTicket, tmp_path: Path) -> None:
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
    proc = subprocess.run(
        [sys.executable, "-m", "escalations", "check", "--live"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 78, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "live: capability " in line]
    assert [line.split("live: capability ")[1].split()[0] for line in lines] == [
        "add_note", "update_ticket", "links", "subscribe", "history",
    ]  # fmt: skip
    assert "Traceback" not in proc.stderr
