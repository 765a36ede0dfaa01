"""The real osTicket (``real.py``): one per test session, its admin setup (the escalation
topic, the flag status, the escalation-api plugin) done once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.connector.osticket.real import RealOsTicket, real_osticket


@pytest.fixture(scope="session")
def osticket() -> RealOsTicket:
    server = real_osticket()
    server.ensure_escalation_topic()
    server.install_plugin()
    return server


@pytest.fixture
def without_plugin(osticket: RealOsTicket) -> Iterator[RealOsTicket]:
    """The plugin disabled in the admin panel for one test, enabled again afterwards."""
    osticket.set_plugin_enabled(False)
    try:
        yield osticket
    finally:
        osticket.set_plugin_enabled(True)
