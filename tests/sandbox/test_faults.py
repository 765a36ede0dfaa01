"""Fault injection through the ``responses`` mount and through the loopback socket server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

import pytest
import requests
import urllib3

from sandbox import (
    LoseResponse,
    RateLimited,
    Refuse,
    SandboxServer,
    ServerError,
    Slow,
    Truncate,
    ZammadSandbox,
    serve,
)
from tests.sandbox.conftest import BOT, Client, new_ticket_payload

AUTH = {"Authorization": f"Token token={BOT}"}


# --- responses mount ---------------------------------------------------------------------------


def test_rate_limited_with_seconds_then_ok(api: Client, sandbox: ZammadSandbox) -> None:
    sandbox.faults.add(RateLimited(method="GET", path=r"/tickets/\d+$", times=2, retry_after=7))
    for _ in range(2):
        response = api("GET", "/tickets/1")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert response.text == "Retry later\n"
    assert api("GET", "/tickets/1").status_code == 200
    assert sandbox.faults.pending == []
    assert [f[0] for f in sandbox.faults.fired] == ["RateLimited", "RateLimited"]


def test_rate_limited_with_http_date(api: Client, sandbox: ZammadSandbox) -> None:
    when = datetime(2026, 12, 1, 9, 0, 30, tzinfo=UTC)
    sandbox.faults.add(RateLimited(retry_after=when))
    header = api("GET", "/users/me").headers["Retry-After"]
    assert header == "Tue, 01 Dec 2026 09:00:30 GMT"
    assert parsedate_to_datetime(header) == when


def test_server_error_not_applied(api: Client, sandbox: ZammadSandbox) -> None:
    sandbox.faults.add(ServerError(method="POST", path="/tickets$", status=503))
    response = api("POST", "/tickets", json=new_ticket_payload())
    assert response.status_code == 503
    assert "503 Service Temporarily Unavailable" in response.text
    assert len(sandbox.tickets) == 4


def test_server_error_after_apply(api: Client, sandbox: ZammadSandbox) -> None:
    sandbox.faults.add(ServerError(method="POST", path="/tickets$", status=504, apply=True))
    assert api("POST", "/tickets", json=new_ticket_payload()).status_code == 504
    assert len(sandbox.tickets) == 5


def test_lost_response_applies_then_read_timeout(api: Client, sandbox: ZammadSandbox) -> None:
    sandbox.faults.add(LoseResponse(method="POST", path="/ticket_articles$"))
    with pytest.raises(requests.exceptions.ReadTimeout):
        api("POST", "/ticket_articles", json={"ticket_id": 1, "body": "copy", "internal": True})
    assert len(sandbox.articles_of(1)) == 3  # applied: an ambiguous write


def test_lost_response_reset(api: Client, sandbox: ZammadSandbox) -> None:
    sandbox.faults.add(LoseResponse(method="POST", path="/tickets$", mode="reset"))
    with pytest.raises(requests.exceptions.ConnectionError):
        api("POST", "/tickets", json=new_ticket_payload())
    assert len(sandbox.tickets) == 5


def test_refuse_is_not_applied_and_looks_like_a_refused_connect(
    api: Client, sandbox: ZammadSandbox
) -> None:
    sandbox.faults.add(Refuse(method="POST"))
    with pytest.raises(requests.exceptions.ConnectionError) as err:
        api("POST", "/tickets", json=new_ticket_payload())
    cause = err.value.args[0]
    assert isinstance(cause, urllib3.exceptions.MaxRetryError)
    assert isinstance(cause.reason, urllib3.exceptions.NewConnectionError)
    assert len(sandbox.tickets) == 4


def test_truncate_and_slow(api: Client, sandbox: ZammadSandbox) -> None:
    sandbox.faults.add(Truncate(method="GET"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api("GET", "/tickets/1")
    sandbox.faults.add(Slow(method="GET", seconds=30))
    with pytest.raises(requests.exceptions.ReadTimeout):
        api("GET", "/tickets/1")  # the client's read timeout is 5 s
    sandbox.faults.add(Slow(method="GET", seconds=1))
    assert api("GET", "/tickets/1").status_code == 200


def test_fault_matching_by_method_and_path(api: Client, sandbox: ZammadSandbox) -> None:
    sandbox.faults.add(ServerError(method="PUT", path=r"/tickets/2$", status=502))
    assert api("PUT", "/tickets/1", json={}).status_code == 200
    assert api("GET", "/tickets/2").status_code == 200
    assert api("PUT", "/tickets/2", json={}).status_code == 502
    with pytest.raises(ValueError):
        sandbox.faults.add(ServerError(times=0))


# --- loopback socket server --------------------------------------------------------------------


@pytest.fixture
def server(sandbox: ZammadSandbox) -> Iterator[SandboxServer]:
    with serve(sandbox) as running:
        yield running


def _get(server: SandboxServer, path: str, timeout: float = 3.0) -> requests.Response:
    return requests.get(f"{server.url}/api/v1{path}", headers=AUTH, timeout=(1, timeout))


def _post(server: SandboxServer, path: str, body: dict, timeout: float = 3.0) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1{path}", json=body, headers=AUTH, timeout=(1, timeout)
    )


def test_socket_server_answers(server: SandboxServer, sandbox: ZammadSandbox) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    response = _get(server, "/tickets/1?expand=true")
    assert response.status_code == 200
    assert response.json()["group"] == "Support"
    created = _post(server, "/tickets", new_ticket_payload())
    assert created.status_code == 201
    with requests.Session() as session:  # keep-alive works across requests
        for _ in range(3):
            assert session.get(f"{server.url}/api/v1/users/me", headers=AUTH, timeout=3).ok


def test_socket_rate_limit(server: SandboxServer, sandbox: ZammadSandbox) -> None:
    sandbox.faults.add(RateLimited(retry_after=3))
    response = _get(server, "/tickets/1")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "3")


def test_socket_lost_response_times_out_after_applying(
    server: SandboxServer, sandbox: ZammadSandbox
) -> None:
    sandbox.faults.add(LoseResponse(method="POST", path="/ticket_articles$", hold=10))
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        _post(server, "/ticket_articles", {"ticket_id": 1, "body": "c", "internal": True}, 0.5)
    assert time.monotonic() - started < 5
    assert len(sandbox.articles_of(1)) == 3


def test_socket_reset_after_applying(server: SandboxServer, sandbox: ZammadSandbox) -> None:
    sandbox.faults.add(LoseResponse(method="POST", path="/tickets$", mode="reset"))
    with pytest.raises(requests.exceptions.ConnectionError):
        _post(server, "/tickets", new_ticket_payload())
    assert len(sandbox.tickets) == 5


def test_socket_refuse_not_applied(server: SandboxServer, sandbox: ZammadSandbox) -> None:
    sandbox.faults.add(Refuse(method="POST", path="/tickets$"))
    with pytest.raises(requests.exceptions.ConnectionError):
        _post(server, "/tickets", new_ticket_payload())
    assert len(sandbox.tickets) == 4
    assert _post(server, "/tickets", new_ticket_payload()).status_code == 201


def test_socket_truncated_body(server: SandboxServer, sandbox: ZammadSandbox) -> None:
    sandbox.faults.add(Truncate(method="GET"))
    with pytest.raises(requests.exceptions.RequestException):
        _get(server, "/ticket_articles/by_ticket/1")


def test_socket_slow_beyond_read_timeout(server: SandboxServer, sandbox: ZammadSandbox) -> None:
    sandbox.faults.add(Slow(method="GET", seconds=1.5))
    with pytest.raises(requests.exceptions.ReadTimeout):
        _get(server, "/tickets/1", timeout=0.3)
    sandbox.faults.add(Slow(method="GET", seconds=0.2))
    assert _get(server, "/tickets/1", timeout=3).status_code == 200


def test_socket_server_503(server: SandboxServer, sandbox: ZammadSandbox) -> None:
    sandbox.faults.add(ServerError(status=503, retry_after=2))
    response = _get(server, "/tickets/1")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "2")


def test_socket_attachment_bytes(server: SandboxServer, sandbox: ZammadSandbox) -> None:
    (article,) = sandbox.articles_of(2)
    att = article["attachments"][0]
    raw = _get(server, f"/ticket_attachment/2/{article['id']}/{att['id']}")
    assert raw.content == sandbox.attachment_data(article["id"], att["id"])


def test_every_answer_carries_one_date_in_the_sandboxs_own_time(
    server: SandboxServer, sandbox: ZammadSandbox
) -> None:
    """As nginx in front of Zammad does; the poll reads the helpdesk's clock from it, so it
    must be the sandbox's (fake, or skewed) clock, never the machine's."""
    expected = format_datetime(sandbox.clock.now().astimezone(UTC), usegmt=True)
    assert _get(server, "/tickets/1").raw.headers.getlist("Date") == [expected]
    assert _get(server, "/tickets/999999").raw.headers.getlist("Date") == [expected]


def test_mounted_answers_carry_the_date_too(api: Client, sandbox: ZammadSandbox) -> None:
    expected = format_datetime(sandbox.clock.now().astimezone(UTC), usegmt=True)
    assert api("GET", "/tickets/1").headers["Date"] == expected
    sandbox.faults.add(RateLimited(retry_after=3))
    throttled = api("GET", "/tickets/1")
    assert (throttled.status_code, throttled.headers["Date"]) == (429, expected)
