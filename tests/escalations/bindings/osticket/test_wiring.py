"""``ESCALATIONS_HELPDESK=osticket`` wires the osTicket adapter with the osTicket binding, and
never with another helpdesk's field map."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from connector.clock import SystemClock
from connector.errors import TransientError
from connector.osticket import CAPABILITIES, PLUGIN_CAPABILITIES, OsTicketAdapter
from escalations.app.wiring import build_adapter, build_binding
from escalations.bindings.osticket import OsTicketBinding
from escalations.errors import ConfigError
from escalations.mappings import load_mappings
from escalations.settings import Settings, shipped_mappings_dir


def _settings(tmp_path: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "helpdesk": "osticket",
        "helpdesk_url": "http://127.0.0.1:8081",
        "helpdesk_token": SecretStr("0123456789ABCDEF0123456789ABCDEF"),
        "helpdesk_db_user": "escalations_ro",
        "helpdesk_db_password": SecretStr("pw"),
        "state_dir": tmp_path,
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


def test_osticket_settings_build_the_osticket_adapter_and_binding(tmp_path: Path) -> None:
    adapter = build_adapter(_settings(tmp_path), SystemClock())  # connects on first read only
    assert isinstance(adapter, OsTicketAdapter)
    mappings = load_mappings(shipped_mappings_dir(), "osticket")
    # the binding asks for the capabilities, which reads osTicket's plugin registry: with no
    # database there (nothing listens here) that is a TransientError naming it, nothing cached
    with pytest.raises(TransientError, match="osTicket database at 127.0.0.1:3306 unreachable"):
        build_binding(adapter, mappings)
    adapter.capabilities = CAPABILITIES | PLUGIN_CAPABILITIES  # as if read: the plugin is there
    binding = build_binding(adapter, mappings)
    assert isinstance(binding, OsTicketBinding)
    assert binding.capabilities >= PLUGIN_CAPABILITIES


def test_zammad_mappings_for_an_osticket_adapter_are_refused(tmp_path: Path) -> None:
    # `escalations run` once loaded zammad.toml whatever ESCALATIONS_HELPDESK said, and the
    # Zammad binding then never saw an osTicket flag
    adapter = build_adapter(_settings(tmp_path), SystemClock())
    adapter.capabilities = CAPABILITIES  # no database here: core osTicket, as if read
    with pytest.raises(ConfigError, match="mappings loaded are 'zammad'"):
        build_binding(adapter, load_mappings(shipped_mappings_dir(), "zammad"))


def test_no_database_account_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ESCALATIONS_HELPDESK_DB_USER"):
        build_adapter(_settings(tmp_path, helpdesk_db_user=""), SystemClock())


def test_localhost_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ESCALATIONS_HELPDESK_URL: .*::1"):
        build_adapter(_settings(tmp_path, helpdesk_url="http://localhost:8081"), SystemClock())
