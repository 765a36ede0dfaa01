"""``hd``: one helpdesk with the worker installed on it, once for each adapter — the Zammad
sandbox (``zammad.py``) and the real osTicket with its plugin (``osticket.py``; skipped
without its ``OSTICKET_*`` variables on a developer's machine, a failure under ``CI=true``).
Every scenario of this folder takes it, so each runs on both helpdesks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from escalations.clock import FakeClock
from tests.behaviour.driver import Helpdesk
from tests.behaviour.osticket import OsTicketHelpdesk, installed_on
from tests.behaviour.zammad import ZammadHelpdesk
from tests.connector.osticket.conftest import osticket
from tests.connector.osticket.real import RealOsTicket
from tests.jobs.conftest import make_world

__all__ = ["osticket"]


@pytest.fixture(params=["zammad", "osticket"])
def hd(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Helpdesk]:
    if request.param == "zammad":
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            world = make_world(tmp_path, clock, rsps, None)
            try:
                yield ZammadHelpdesk(world)
            finally:
                world.store.close()
        return
    server: RealOsTicket = request.getfixturevalue("osticket")
    for installed in installed_on(server, tmp_path, plugin=True):
        yield OsTicketHelpdesk(server, installed)
