"""The real osTicket (``tests/connector/osticket/real.py``), its admin setup done once."""

from __future__ import annotations

import pytest

from tests.connector.osticket.real import RealOsTicket, real_osticket


@pytest.fixture(scope="session")
def osticket() -> RealOsTicket:
    server = real_osticket()
    server.ensure_escalation_topic()
    return server
