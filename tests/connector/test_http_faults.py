"""The fault matrix of RELIABILITY.md §B8 for connector/http.py, per verb.

Faults are injected in-process (§B3): ``FaultAdapter`` is a ``requests`` transport adapter
mounted on the client's session that raises exactly what ``HTTPAdapter.send`` raises for a
refused connection, a DNS failure, a connect timeout, a read timeout or a reset after send,
and returns real ``urllib3`` responses for statuses and truncated bodies. A few tests use real
loopback sockets to check that the real exceptions classify the same way. The secrets witness
test (rule 30) runs every adapter method against every failure mode.
"""

from __future__ import annotations

import inspect
import io
import logging
import random
import re
import secrets
import socket
import struct
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.client import RemoteDisconnected
from typing import Any

import pytest
import requests
import requests.adapters
import responses
import urllib3.exceptions
import urllib3.response

from connector.base import (
    ArticleDraft,
    AttachmentRef,
    HelpdeskAdapter,
    Marker,
    TicketChanges,
    TicketDraft,
)
from connector.errors import (
    AmbiguousWrite,
    HelpdeskError,
    RateLimited,
    TransientError,
)
from connector.http import HttpClient, HttpPolicy, build_session, classify_transport_error
from connector.zammad import ZammadAdapter
from escalations.clock import FakeClock

BASE = "https://zammad.example"
OK_BODY = b'{"id": 1, "ok": true}'

# -- the fault adapter ----------------------------------------------------------------------


def _raw(
    status: int, body: bytes, headers: dict[str, str], *, length: int | None = None
) -> urllib3.response.HTTPResponse:
    all_headers = {"Content-Type": "application/json", **headers}
    all_headers["Content-Length"] = str(len(body) if length is None else length)
    return urllib3.response.HTTPResponse(
        body=io.BytesIO(body),
        headers=all_headers,
        status=status,
        preload_content=False,
        decode_content=False,
        enforce_content_length=True,
    )


class FaultAdapter(requests.adapters.HTTPAdapter):
    """Answers each request with the next fault of ``script``, then with 200 ``OK_BODY``.

    ``attempts`` counts every request; ``applied`` counts those the server could have acted
    on (everything except refused, DNS failure, connect timeout and a 429, which rack-attack
    or a proxy answers before the application): for a POST it is the number of remote
    objects that could exist afterwards.
    """

    NOT_APPLIED = frozenset({"refuse", "dns", "connect_timeout", 429})

    def __init__(self, script: list[Any]) -> None:
        super().__init__(max_retries=0)
        self.script = list(script)
        self.attempts = 0
        self.applied = 0
        self.timeouts: list[Any] = []
        self.methods: list[str] = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        self.attempts += 1
        self.timeouts.append(timeout)
        self.methods.append(request.method)
        fault = self.script.pop(0) if self.script else 200
        url = request.url
        status = fault[0] if isinstance(fault, tuple) else fault
        if status not in self.NOT_APPLIED:
            self.applied += 1
        if fault == "refuse":
            reason = urllib3.exceptions.NewConnectionError(
                None, "Failed to establish a new connection: [Errno 111] Connection refused"
            )
            raise requests.ConnectionError(
                urllib3.exceptions.MaxRetryError(None, url, reason), request=request
            )
        if fault == "dns":
            reason = urllib3.exceptions.NameResolutionError(
                "zammad.example", None, socket.gaierror(-2, "Name or service not known")
            )
            raise requests.ConnectionError(
                urllib3.exceptions.MaxRetryError(None, url, reason), request=request
            )
        if fault == "connect_timeout":
            reason = urllib3.exceptions.ConnectTimeoutError(None, "connect timed out")
            raise requests.ConnectTimeout(
                urllib3.exceptions.MaxRetryError(None, url, reason), request=request
            )
        if fault == "read_timeout":
            raise requests.ReadTimeout(
                urllib3.exceptions.ReadTimeoutError(None, url, "Read timed out."), request=request
            )
        if fault == "reset":
            raise requests.ConnectionError(
                urllib3.exceptions.ProtocolError(
                    "Connection aborted.",
                    RemoteDisconnected("Remote end closed connection without response"),
                ),
                request=request,
            )
        if fault == "truncate":
            return self.build_response(request, _raw(200, b'{"id": 1, "ti', {}, length=400))
        if isinstance(fault, tuple):
            status, headers = fault
            return self.build_response(request, _raw(status, b'{"error":"x"}', headers))
        return self.build_response(request, _raw(int(fault), OK_BODY, {}))


def faulty_client(
    clock: FakeClock, script: list[Any], **policy: Any
) -> tuple[HttpClient, FaultAdapter]:
    settings: dict[str, Any] = {"requests_per_minute": 6000, "burst": 1000, **policy}
    session = build_session(HttpPolicy(**settings))
    adapter = FaultAdapter(script)
    session.mount("https://", adapter)
    client = HttpClient(
        BASE,
        {"Authorization": "Token token=fault-token-0001"},
        HttpPolicy(**settings),
        clock,
        session=session,
        rng=random.Random(3),
    )
    return client, adapter


def call(client: HttpClient, method: str) -> Any:
    if method == "GET":
        return client.get_json("/api/v1/tickets/1")
    if method == "PUT":
        return client.put_json("/api/v1/tickets/1", {"state": "open"})
    if method == "DELETE":
        return client.delete_json("/api/v1/tags/remove", {"item": "x"})
    return client.post_json("/api/v1/tickets", {"title": "t"})


RETRIED_FOR_ALL = ["refuse", "dns", "connect_timeout", 429]
RETRIED_FOR_IDEMPOTENT = [*RETRIED_FOR_ALL, "read_timeout", "reset", "truncate", 502, 503, 504]
AMBIGUOUS_FOR_POST = ["read_timeout", "reset", "truncate", 500, 502, 503, 504]


# -- the matrix -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("fault", RETRIED_FOR_IDEMPOTENT)
def test_idempotent_verbs_are_retried(clock, method, fault):
    client, adapter = faulty_client(clock, [fault])
    assert call(client, method) == {"id": 1, "ok": True}
    assert adapter.attempts == 2
    assert len(clock.sleeps) == 1


@pytest.mark.parametrize("fault", RETRIED_FOR_ALL)
def test_post_is_retried_only_before_send_or_on_429(clock, fault):
    client, adapter = faulty_client(clock, [fault, fault])
    assert call(client, "POST") == {"id": 1, "ok": True}
    assert adapter.attempts == 3
    assert adapter.applied == 1  # exactly one remote object


@pytest.mark.parametrize("fault", AMBIGUOUS_FOR_POST)
def test_post_after_send_is_ambiguous_and_never_retried(clock, fault):
    client, adapter = faulty_client(clock, [fault])
    with pytest.raises(AmbiguousWrite) as info:
        call(client, "POST")
    assert adapter.attempts == 1  # exactly one request sent
    assert clock.sleeps == []
    assert info.value.method == "POST"
    assert info.value.path == "/api/v1/tickets"


@pytest.mark.parametrize("fault", AMBIGUOUS_FOR_POST)
def test_put_declared_not_idempotent_is_ambiguous_and_never_retried(clock, fault):
    """A PUT carrying an article (Zammad's ticket update with a note) is sent like a POST:
    after it may have been applied, never again."""
    client, adapter = faulty_client(clock, [fault])
    with pytest.raises(AmbiguousWrite) as info:
        client.put_json("/api/v1/tickets/1", {"article": {"body": "b"}}, idempotent=False)
    assert adapter.attempts == 1
    assert clock.sleeps == []
    assert info.value.method == "PUT"


@pytest.mark.parametrize("fault", RETRIED_FOR_ALL)
def test_put_declared_not_idempotent_is_retried_only_before_send_or_on_429(clock, fault):
    client, adapter = faulty_client(clock, [fault])
    assert client.put_json("/api/v1/tickets/1", {"article": {}}, idempotent=False)
    assert adapter.attempts == 2
    assert adapter.applied == 1


def test_post_declared_idempotent_is_retried_after_send(clock):
    client, adapter = faulty_client(clock, ["read_timeout", 503])
    assert client.post_json("/api/v1/tags/add", {"item": "x"}, idempotent=True)
    assert adapter.attempts == 3


def test_get_500_is_transient_but_not_retried(clock):
    client, adapter = faulty_client(clock, [500])
    with pytest.raises(TransientError) as info:
        call(client, "GET")
    assert info.value.status == 500
    assert adapter.attempts == 1


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "POST"])
def test_every_attempt_carries_the_timeout_tuple(clock, method):
    client, adapter = faulty_client(
        clock, ["refuse", 503 if method != "POST" else "dns"], connect_timeout=2, read_timeout=9
    )
    call(client, method)
    assert adapter.timeouts == [(2, 9)] * 3


def test_retry_after_seconds_is_honoured(clock):
    client, adapter = faulty_client(clock, [(429, {"Retry-After": "7"})])
    call(client, "GET")
    assert clock.sleeps[0] >= 7
    assert clock.sleeps[0] == pytest.approx(7)  # max(7, backoff of attempt 1 ≤ 0.5)


def test_retry_after_http_date_is_relative_to_the_clock(clock):
    when = format_datetime(clock.now() + timedelta(seconds=12), usegmt=True)
    client, _ = faulty_client(clock, [(503, {"Retry-After": when})])
    call(client, "PUT")
    assert clock.sleeps[0] == pytest.approx(12)


def test_retry_after_is_clamped(clock):
    client, _ = faulty_client(clock, [(429, {"Retry-After": "86400"})], retry_budget=1000)
    call(client, "GET")
    assert clock.sleeps == [300]


def test_a_wait_beyond_the_budget_gives_up_at_once(clock):
    client, adapter = faulty_client(clock, [(429, {"Retry-After": "120"})])
    with pytest.raises(RateLimited) as info:
        call(client, "POST")
    assert info.value.retry_after == 120
    assert adapter.attempts == 1
    assert clock.sleeps == []


def test_backoff_grows_exponentially_with_jitter_then_gives_up(clock):
    client, adapter = faulty_client(
        clock, [503] * 10, max_attempts=5, backoff_base=0.5, backoff_cap=30, retry_budget=1000
    )
    with pytest.raises(TransientError) as info:
        call(client, "GET")
    assert info.value.status == 503
    assert type(info.value) is TransientError
    assert adapter.attempts == 5
    assert len(clock.sleeps) == 4
    for attempt, wait in enumerate(clock.sleeps, start=1):
        ceiling = 0.5 * 2 ** (attempt - 1)
        assert ceiling / 2 <= wait <= ceiling
    assert len(set(clock.sleeps)) == 4  # jittered, not a fixed ladder


def test_backoff_is_capped(clock):
    client, _ = faulty_client(
        clock, [503] * 7, max_attempts=8, backoff_base=1, backoff_cap=4, retry_budget=1000
    )
    call(client, "GET")
    assert max(clock.sleeps) <= 4
    assert min(clock.sleeps[3:]) >= 2


def test_exhausted_429_raises_rate_limited(clock):
    client, adapter = faulty_client(clock, [429] * 5, max_attempts=3)
    with pytest.raises(RateLimited):
        call(client, "GET")
    assert adapter.attempts == 3


def test_truncated_body_on_get_is_retried_then_transient(clock):
    client, adapter = faulty_client(clock, ["truncate"] * 3, max_attempts=3)
    with pytest.raises(TransientError, match="truncated"):
        call(client, "GET")
    assert adapter.attempts == 3


def test_classifier_names_each_phase():
    url = f"{BASE}/x"
    refused = requests.ConnectionError(
        urllib3.exceptions.MaxRetryError(
            None, url, urllib3.exceptions.NewConnectionError(None, "refused")
        )
    )
    reset = requests.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "x"))
    )
    body_timeout = requests.ConnectionError(
        urllib3.exceptions.ReadTimeoutError(None, url, "Read timed out.")
    )
    assert classify_transport_error(refused) == "connect"
    assert classify_transport_error(requests.ConnectTimeout()) == "connect"
    assert classify_transport_error(reset) == "reset"
    assert classify_transport_error(body_timeout) == "read_timeout"
    assert classify_transport_error(requests.ReadTimeout()) == "read_timeout"
    assert classify_transport_error(requests.exceptions.ChunkedEncodingError()) == "truncated"
    assert classify_transport_error(requests.ConnectionError("unknown")) == "reset"


# -- real loopback sockets ------------------------------------------------------------------


class _Server:
    """A loopback TCP server that reads one request per connection and then misbehaves."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.requests = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            with self.lock:
                self.requests += 1
            if self.behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif self.behaviour == "silent":
                self.stop.wait(2.0)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(2)


@pytest.fixture
def server(request) -> Iterator[_Server]:
    srv = _Server(request.param)
    yield srv
    srv.close()


def loopback_client(clock: FakeClock, port: int, **policy: Any) -> HttpClient:
    settings: dict[str, Any] = {"requests_per_minute": 6000, "burst": 1000, **policy}
    return HttpClient(
        f"http://127.0.0.1:{port}",
        {"Authorization": "Token token=loopback-0001"},
        HttpPolicy(**settings),
        clock,
        rng=random.Random(5),
    )


def test_real_refused_connection_is_retried_for_post(clock):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens: connection refused
    client = loopback_client(clock, port, max_attempts=3)
    with pytest.raises(TransientError, match="could not connect") as info:
        client.post_json("/api/v1/tickets", {"title": "t"})
    assert type(info.value) is TransientError
    assert len(clock.sleeps) == 2  # retried up to the limit


@pytest.mark.parametrize("server", ["reset"], indirect=True)
def test_real_reset_after_send_is_ambiguous_for_post(clock, server):
    client = loopback_client(clock, server.port, max_attempts=3)
    with pytest.raises(AmbiguousWrite):
        client.post_json("/api/v1/tickets", {"title": "t"})
    assert server.requests == 1


@pytest.mark.parametrize("server", ["reset"], indirect=True)
def test_real_reset_after_send_is_retried_for_get(clock, server):
    client = loopback_client(clock, server.port, max_attempts=3)
    with pytest.raises(TransientError):
        client.get_json("/api/v1/tickets/1")
    assert server.requests == 3


@pytest.mark.parametrize("server", ["silent"], indirect=True)
def test_real_read_timeout_on_post_sends_exactly_one_request(clock, server):
    client = loopback_client(clock, server.port, read_timeout=0.2, max_attempts=3)
    with pytest.raises(AmbiguousWrite, match="read timed out"):
        client.post_json("/api/v1/ticket_articles", {"body": "b"})
    assert server.requests == 1


@pytest.mark.parametrize("server", ["silent"], indirect=True)
def test_real_read_timeout_on_a_put_with_an_article_sends_exactly_one_request(clock, server):
    client = loopback_client(clock, server.port, read_timeout=0.2, max_attempts=3)
    with pytest.raises(AmbiguousWrite, match="read timed out"):
        client.put_json("/api/v1/tickets/1", {"article": {"body": "b"}}, idempotent=False)
    assert server.requests == 1


@pytest.mark.parametrize("server", ["silent"], indirect=True)
def test_real_read_timeout_on_get_is_retried(clock, server):
    client = loopback_client(clock, server.port, read_timeout=0.2, max_attempts=2)
    with pytest.raises(TransientError, match="read timed out"):
        client.get_json("/api/v1/tickets/1")
    assert server.requests == 2


# -- witness: the token never leaks ---------------------------------------------------------

T0 = datetime(2026, 11, 1, tzinfo=UTC)
MARKER = Marker("hde1-0123456789abcdef")
DRAFT = TicketDraft(
    title="ESC", group="2nd Level", customer_id=2, first_note=ArticleDraft(body="<p>x</p>")
)
ADAPTER_CALLS: dict[str, Callable[[ZammadAdapter], Any]] = {
    "changed_tickets": lambda a: list(a.changed_tickets(T0)),
    "get_ticket": lambda a: a.get_ticket(3),
    "get_tags": lambda a: a.get_tags(3),
    "list_articles": lambda a: a.list_articles(3),
    "fetch_attachment": lambda a: a.fetch_attachment(
        AttachmentRef(5, 35, 17, "portal.txt", 19, "text/plain"), max_bytes=1000
    ),
    "digest_attachment": lambda a: a.digest_attachment(
        AttachmentRef(5, 35, 17, "portal.txt", 19, "text/plain")
    ),
    "list_links": lambda a: a.list_links(3),
    "list_subscribers": lambda a: a.list_subscribers(3),
    "ticket_events": lambda a: a.ticket_events(3),
    "recent_calls": lambda a: a.recent_calls(),
    "count_customer_tickets": lambda a: a.count_customer_tickets(2, created_since=T0),
    "customer_tickets": lambda a: list(a.customer_tickets([2], created_since=T0)),
    "find_ticket_by_marker": lambda a: a.find_ticket_by_marker(MARKER, linked_to=3),
    "find_article_by_marker": lambda a: a.find_article_by_marker(3, MARKER),
    "me": lambda a: a.me(),
    "get_user": lambda a: a.get_user(3),
    "find_user": lambda a: a.find_user("chris@chrispresso.com"),
    "list_groups": lambda a: a.list_groups(),
    "list_states": lambda a: a.list_states(),
    "list_fields": lambda a: a.list_fields(),
    "create_ticket": lambda a: a.create_ticket(DRAFT, marker=MARKER),
    "add_article": lambda a: a.add_article(3, ArticleDraft(body="b"), marker=MARKER),
    "set_tags": lambda a: a.set_tags(3, present=frozenset({"escalation"})),
    "update_ticket": lambda a: a.update_ticket(3, TicketChanges(state="open")),
    "link_tickets": lambda a: a.link_tickets(3, 19),
    "subscribe": lambda a: a.subscribe(3, 4),
}
NO_REQUEST = {"clock_offset"}
"""Protocol methods that only report what earlier answers said: nothing to leak."""
FAILURES = ["401", "403", "404", "422-echo", "429", "500", "503", "read_timeout", "refused"]


def test_witness_covers_every_protocol_method():
    protocol = {
        name
        for name, member in inspect.getmembers(HelpdeskAdapter)
        if callable(member) and not name.startswith("_")
    }
    assert protocol - NO_REQUEST == set(ADAPTER_CALLS)


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("method", sorted(ADAPTER_CALLS))
def test_witness_token_never_leaks(clock, caplog, method, failure):
    caplog.set_level(logging.DEBUG)
    token = "wit-" + secrets.token_urlsafe(24)
    adapter = ZammadAdapter(
        HttpClient(
            BASE,
            {"Authorization": f"Token token={token}"},
            HttpPolicy(max_attempts=2, requests_per_minute=6000, burst=1000),
            clock,
        ),
        clock=clock,
    )

    def answer(request: requests.PreparedRequest) -> Any:
        echoed = f"{request.headers.get('Authorization')} {token}"
        if failure == "read_timeout":
            raise requests.ReadTimeout("Read timed out.")
        if failure == "refused":
            raise requests.ConnectionError(
                urllib3.exceptions.MaxRetryError(
                    None, request.url, urllib3.exceptions.NewConnectionError(None, "refused")
                )
            )
        status = 422 if failure == "422-echo" else int(failure)
        headers = {"X-Request-Id": token, "Retry-After": "1", "WWW-Authenticate": echoed}
        body = f'{{"error":"Invalid token {echoed}","error_human":"{token}"}}'
        return (status, headers, body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for verb in ("GET", "POST", "PUT", "DELETE"):
            rsps.add_callback(verb, re.compile(rf"{BASE}/.*"), answer)
        try:
            result = ADAPTER_CALLS[method](adapter)
        except HelpdeskError as exc:
            texts = [
                str(exc),
                repr(exc),
                exc.message,
                exc.body_excerpt or "",
                exc.request_id or "",
                "".join(traceback.format_exception(exc)),
            ]
        else:
            assert method == "list_fields"
            assert failure == "403"
            assert result is None
            texts = []
    for text in [*texts, caplog.text]:
        assert token not in text
        assert "Token token=" + token[:8] not in text
