"""``mappings/osticket.toml`` and the one ``process.toml`` both helpdesks share."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from escalations.bindings.osticket import OsTicketFieldMap
from escalations.bindings.zammad import ZammadFieldMap
from escalations.errors import MappingError
from escalations.mappings import Mappings, load_mappings
from escalations.settings import shipped_mappings_dir


def _edited(tmp_path: Path, old: str, new: str) -> Mappings:
    directory = tmp_path / "mappings"
    shutil.copytree(shipped_mappings_dir(), directory)
    path = directory / "osticket.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return load_mappings(directory, "osticket")


def test_the_same_process_toml_drives_both_helpdesks() -> None:
    zammad = load_mappings(shipped_mappings_dir(), "zammad")
    osticket = load_mappings(shipped_mappings_dir(), "osticket")
    assert isinstance(zammad.helpdesk, ZammadFieldMap)
    assert isinstance(osticket.helpdesk, OsTicketFieldMap)
    assert osticket.profile == zammad.profile
    assert osticket.helpdesk_file == shipped_mappings_dir() / "osticket.toml"
    assert set(osticket.helpdesk.people) == set(zammad.helpdesk.people)


def test_a_status_used_twice_is_named_by_file_line_and_key(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as caught:
        _edited(tmp_path, 'parked = "Parked"', 'parked = "Open"')
    message = str(caught.value)
    assert "osticket.toml:" in message
    assert "statuses.parked" in message
    assert "already used by statuses.open" in message


def test_the_flag_cannot_be_a_process_status(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"flag\.status"):
        _edited(tmp_path, 'status = "Escalate"', 'status = "Closed"')


def test_a_stock_field_is_not_a_custom_one(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="stock osTicket field"):
        _edited(tmp_path, 'rfo = "escalation_rfo"', 'rfo = "subject"')


def test_a_role_without_an_agent_is_reported_against_osticket_toml(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as caught:
        _edited(tmp_path, 'duty_manager = "duty.manager@fused.example"\n', "")
    assert "osticket.toml" in str(caught.value)
    assert "people.duty_manager" in str(caught.value)
