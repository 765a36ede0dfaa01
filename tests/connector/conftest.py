"""The ``backend`` fixture: a Zammad the real adapter talks to through ``responses``.

Parametrised over

* ``fixtures``: ``tests/connector/fake_zammad.py``, a small stateful fake seeded from the
  documentation fixtures;
* ``sandbox``: the project's in-memory Zammad (``sandbox/``), when it is importable.

Behavioural tests take ``backend`` and use only the adapter's public API plus the facts on
``Backend`` (an existing ticket, a group, users), so they run unchanged against both.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import responses

from connector.http import HttpClient, HttpPolicy
from connector.zammad import ZammadAdapter
from escalations.clock import FakeClock
from tests.connector.fake_zammad import FakeZammad

BASE_URL = "https://zammad.test"


@dataclass
class Backend:
    name: str
    adapter: ZammadAdapter
    rsps: responses.RequestsMock
    clock: FakeClock
    token: str
    parent_ticket_id: int
    """An existing ticket the token's user may read, tag and link."""
    group: str
    """A group where the token's user may create tickets."""
    customer_id: int
    agent_id: int
    """An active agent (not the token's user) with full access to ``group``."""
    outsider_id: int
    """An active user without full access to ``group`` (cannot own its tickets)."""
    may_impersonate: bool
    """Whether the token's user holds ``admin.user`` (needed for ``From``)."""
    faults: Any = None
    """The backend's fault queue (``sandbox.FaultQueue``), when it has one."""

    def requests(self, method: str | None = None) -> list[str]:
        """``"METHOD /path"`` of every request so far (optionally one method only)."""
        found = []
        for call in self.rsps.calls:
            request = call.request
            if method is None or request.method == method:
                path = (request.path_url or "").split("?")[0]
                found.append(f"{request.method} {path}")
        return found

    def adapter_with(self, **kw: object) -> ZammadAdapter:
        return ZammadAdapter(self.adapter._client, clock=self.clock, **kw)  # type: ignore[arg-type]


def make_adapter(clock: FakeClock, token: str, base_url: str = BASE_URL) -> ZammadAdapter:
    policy = HttpPolicy(requests_per_minute=6000, burst=1000)
    client = HttpClient(base_url, {"Authorization": f"Token token={token}"}, policy, clock)
    return ZammadAdapter(client, clock=clock)


def _fixtures_backend(clock: FakeClock, rsps: responses.RequestsMock) -> Backend:
    fake = FakeZammad.seeded(clock)
    fake.mount(rsps, BASE_URL)
    token = secrets.token_hex(16)
    return Backend(
        name="fixtures",
        adapter=make_adapter(clock, token),
        rsps=rsps,
        clock=clock,
        token=token,
        parent_ticket_id=3,
        group="2nd Level",
        customer_id=2,
        agent_id=4,
        outsider_id=2,
        may_impersonate=True,
    )


def _sandbox_backend(clock: FakeClock, rsps: responses.RequestsMock) -> Backend:
    from sandbox import ZammadSandbox, mount

    sandbox = ZammadSandbox.demo(clock=clock)
    mount(sandbox, rsps, BASE_URL)
    token = sandbox.token_of("escalation-bot")  # ticket.agent only, like production
    return Backend(
        name="sandbox",
        adapter=make_adapter(clock, token),
        rsps=rsps,
        clock=clock,
        token=token,
        parent_ticket_id=min(sandbox.tickets),
        group="Escalations",
        customer_id=sandbox.user_id("escalations-internal@example.invalid"),
        agent_id=sandbox.user_id("alice.agent@fused.example"),
        outsider_id=sandbox.user_id("sean.walsh@residential.example"),
        may_impersonate=False,
        faults=sandbox.faults,
    )


def _sandbox_available() -> bool:
    try:
        from sandbox import ZammadSandbox, mount  # noqa: F401
    except ImportError:
        return False
    return True


BACKENDS = {"fixtures": _fixtures_backend}
if _sandbox_available():
    BACKENDS["sandbox"] = _sandbox_backend


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Backend]:
    """A fresh backend; afterwards, every request it saw must have carried a
    ``(connect, read)`` timeout (STYLE rule 8)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield BACKENDS[request.param](clock, rsps)
        for call in rsps.calls:
            timeout = call.request.req_kwargs.get("timeout")
            assert isinstance(timeout, tuple), call.request.url
            assert len(timeout) == 2, call.request.url
