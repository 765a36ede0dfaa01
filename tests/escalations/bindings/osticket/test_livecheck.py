"""The osTicket live check against the real osTicket 1.18 without the plugin."""

from __future__ import annotations

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
