"""Fixtures for the sandbox's own tests: a demo sandbox on a fake clock, mounted into
``responses``, and a small client that speaks to it with plain ``requests``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import responses

from escalations.clock import FakeClock
from sandbox import ZammadSandbox, mount

BASE = "https://zammad.test"
BOT = "sandbox-bot-token"
ADMIN = "sandbox-admin-token"


class Client:
    """``requests`` against the mounted sandbox, with a token and timeouts."""

    def __init__(self, session: requests.Session, base: str, token: str | None) -> None:
        self.session = session
        self.base = base
        self.token = token

    def __call__(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        token: str | None | bool = True,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        sent = {"Accept": "application/json", **(headers or {})}
        use = self.token if token is True else token
        if use:
            sent["Authorization"] = f"Token token={use}"
        return self.session.request(
            method,
            f"{self.base}/api/v1{path}",
            json=json,
            params=params,
            headers=sent,
            timeout=(3, 5),
            allow_redirects=False,
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def sandbox(clock: FakeClock) -> ZammadSandbox:
    return ZammadSandbox.demo(clock=clock)


@pytest.fixture
def rsps(sandbox: ZammadSandbox) -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        mount(sandbox, mock, BASE)
        yield mock


@pytest.fixture
def api(rsps: responses.RequestsMock) -> Iterator[Client]:
    with requests.Session() as session:
        yield Client(session, BASE, BOT)


@pytest.fixture
def admin_api(api: Client) -> Client:
    return Client(api.session, BASE, ADMIN)


def new_ticket_payload(**overrides: Any) -> dict[str, Any]:
    """A valid escalation-ticket create payload (internal note first, placeholder customer)."""
    payload: dict[str, Any] = {
        "title": "ESC: HQ VPN outage",
        "group": "Escalations",
        "customer_id": "guess:escalations-internal@example.invalid",
        "article": {
            "type": "note",
            "internal": True,
            "content_type": "text/html",
            "subject": "Escalated",
            "body": "<p>Escalated from #31004</p>",
        },
    }
    payload.update(overrides)
    return payload
