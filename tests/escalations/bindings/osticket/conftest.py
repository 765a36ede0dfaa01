"""The real osTicket (``tests/connector/osticket/real.py``), its admin setup (topic, flag
status, the escalation-api plugin) done once; the same fixtures as the adapter's tests."""

from __future__ import annotations

from tests.connector.osticket.conftest import osticket, without_plugin

__all__ = ["osticket", "without_plugin"]
