"""connector/http.py: timeouts, URL and redirect rules, error mapping, Retry-After parsing,
the request budget, downloads and what gets logged. Fault injection per verb lives in
``test_http_faults.py``."""

from __future__ import annotations

import logging
import random
import secrets
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import responses
from hypothesis import given
from hypothesis import strategies as st

from connector.errors import (
    AmbiguousWrite,
    AuthError,
    Conflict,
    Forbidden,
    HelpdeskError,
    Maintenance,
    NotFound,
    RateLimited,
    RedirectError,
    Rejected,
    SetupError,
    TooLarge,
    TransientError,
    Unauthorized,
)
from connector.http import (
    RETRY_AFTER_MAX,
    WAIT_SLICE,
    HttpClient,
    HttpPolicy,
    StoppingClock,
    TokenBucket,
    UnsafeURLError,
    build_session,
    check_base_url,
    parse_retry_after,
    raise_for_response,
)
from connector.redaction import MASK, SECRETS
from escalations.clock import FakeClock

BASE = "https://zammad.example"


def make_client(
    clock: FakeClock, token: str = "witness-token-0001", **policy: object
) -> HttpClient:
    settings: dict[str, object] = {"requests_per_minute": 6000, "burst": 1000, **policy}
    return HttpClient(
        BASE,
        {"Authorization": f"Token token={token}"},
        HttpPolicy(**settings),  # type: ignore[arg-type]
        clock,
        rng=random.Random(7),
    )


@pytest.fixture
def rsps():
    with responses.RequestsMock() as mock:
        yield mock


# -- policy and session ---------------------------------------------------------------------


def test_missing_ca_bundle_is_a_setup_error(tmp_path):
    with pytest.raises(SetupError, match="CA bundle"):
        HttpPolicy(ca_bundle=tmp_path / "nope.pem")


def test_session_verifies_tls():
    assert build_session(HttpPolicy()).verify is True


@pytest.mark.parametrize(
    ("call", "method"),
    [
        (lambda c: c.get_json("/api/v1/a"), "GET"),
        (lambda c: c.post_json("/api/v1/a", {"x": 1}), "POST"),
        (lambda c: c.put_json("/api/v1/a", {"x": 1}), "PUT"),
        (lambda c: c.delete_json("/api/v1/a", {"x": 1}), "DELETE"),
        (lambda c: c.download("/api/v1/a", max_bytes=100), "GET"),
        (lambda c: c.request("HEAD", "/api/v1/a"), "HEAD"),
    ],
)
def test_every_request_carries_connect_and_read_timeouts(rsps, clock, call, method):
    if method == "HEAD":
        rsps.add(method, f"{BASE}/api/v1/a")
    else:
        rsps.add(method, f"{BASE}/api/v1/a", json={"ok": True})
    call(make_client(clock, connect_timeout=4, read_timeout=21))
    kwargs = rsps.calls[0].request.req_kwargs
    assert kwargs["timeout"] == (4, 21)
    assert kwargs["verify"] is not False


def test_ca_bundle_is_passed_as_verify(rsps, clock, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    rsps.add("GET", f"{BASE}/api/v1/a", json={})
    make_client(clock, ca_bundle=bundle).get_json("/api/v1/a")
    assert rsps.calls[0].request.req_kwargs["verify"] == str(bundle)


def test_auth_headers_are_sent_and_registered_as_secrets(rsps, clock):
    token = secrets.token_hex(12)
    rsps.add("GET", f"{BASE}/api/v1/a", json={})
    client = make_client(clock, token=token)
    client.get_json("/api/v1/a")
    assert rsps.calls[0].request.headers["Authorization"] == f"Token token={token}"
    assert rsps.calls[0].request.headers["Accept"] == "application/json"
    assert SECRETS.redact(f"x {token} y") == f"x {MASK} y"
    assert token not in repr(client)
    assert token not in repr(client._auth)


def test_netrc_cannot_replace_the_token(rsps, clock, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine zammad.example login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    rsps.add("GET", f"{BASE}/api/v1/a", json={})
    make_client(clock, token="tok-netrc-0001").get_json("/api/v1/a")
    assert rsps.calls[0].request.headers["Authorization"] == "Token token=tok-netrc-0001"


# -- URL rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://zammad.example",
        "http://10.0.0.5:3000",
        "ftp://zammad.example",
        "https://user:pw@zammad.example",
        "https://zammad.example/?x=1",
        "zammad.example",
        "https://",
    ],
)
def test_unsafe_urls_are_refused(clock, url):
    with pytest.raises(UnsafeURLError) as info:
        HttpClient(url, {}, HttpPolicy(), clock)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, SetupError)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.9.9.9",
        "http://[::1]:3000",
        "http://localhost:3000/",
        "https://zammad.example/helpdesk/",
    ],
)
def test_loopback_http_and_https_are_accepted(url):
    assert check_base_url(url) == url.rstrip("/")


# -- redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_read_does_not_follow_a_same_host_redirect(rsps, clock, method, status):
    rsps.add(
        method,
        f"{BASE}/api/v1/a",
        status=status,
        headers={"Location": "/zammad/api/v1/a?token=witness-token-0001"},
    )  # relative Location, a token in its query
    with pytest.raises(RedirectError) as info:
        make_client(clock).request(method, "/api/v1/a")
    assert len(rsps.calls) == 1  # the target was never requested
    assert info.value.status == status
    assert info.value.path == "/api/v1/a"
    text = str(info.value)
    assert "the helpdesk URL redirects" in text
    assert f"HTTP {status} to /zammad/api/v1/a" in text
    assert "witness-token-0001" not in text
    assert "token=" not in repr(info.value)


def test_a_same_host_redirect_is_not_retried(rsps, clock):
    rsps.add("GET", f"{BASE}/api/v1/a", status=301, headers={"Location": f"{BASE}/api/v1/b"})
    with pytest.raises(RedirectError, match=r"HTTP 301 to /api/v1/b"):
        make_client(clock).get_json("/api/v1/a")
    assert len(rsps.calls) == 1
    assert clock.sleeps == []


def test_a_redirect_without_location_is_refused(rsps, clock):
    rsps.add("GET", f"{BASE}/api/v1/a", status=302)
    with pytest.raises(RedirectError, match="without a Location"):
        make_client(clock).get_json("/api/v1/a")


@pytest.mark.parametrize(
    "location",
    [
        "https://evil.example/api/v1/a",
        "http://zammad.example/api/v1/a",  # scheme downgrade
        "https://zammad.example:8443/api/v1/a",  # other port
    ],
)
def test_read_refuses_a_redirect_to_another_origin(rsps, clock, location):
    rsps.add("GET", f"{BASE}/api/v1/a", status=302, headers={"Location": location})
    with pytest.raises(RedirectError, match="another host") as info:
        make_client(clock).get_json("/api/v1/a")
    assert len(rsps.calls) == 1  # the other host was never contacted
    assert "evil" not in str(info.value)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_writes_never_follow_redirects(rsps, clock, method, status):
    rsps.add(method, f"{BASE}/api/v1/a", status=status, headers={"Location": "/api/v1/b"})
    client = make_client(clock)
    with pytest.raises(RedirectError) as info:
        client._json_call(method, "/api/v1/a", json={"x": 1})
    assert info.value.status == status
    assert len(rsps.calls) == 1
    assert rsps.calls[0].request.req_kwargs.get("allow_redirects", False) is False


# -- one place maps responses to exceptions -------------------------------------------------


@pytest.mark.parametrize(
    ("status", "method", "expected"),
    [
        (401, "GET", Unauthorized),
        (403, "POST", Forbidden),
        (404, "GET", NotFound),
        (409, "PUT", Conflict),
        (400, "POST", Rejected),
        (422, "POST", Rejected),
        (413, "POST", Rejected),
        (429, "POST", RateLimited),
        (502, "GET", TransientError),
        (503, "PUT", TransientError),
        (504, "DELETE", TransientError),
        (500, "GET", TransientError),
        (500, "POST", AmbiguousWrite),
        (502, "POST", AmbiguousWrite),
        (503, "POST", AmbiguousWrite),
        (302, "POST", RedirectError),
    ],
)
def test_raise_for_response_maps_statuses(status, method, expected):
    resp = _response(status, method)
    with pytest.raises(expected) as info:
        raise_for_response(resp)
    assert type(info.value) is expected
    assert info.value.status == status
    assert info.value.method == method


def test_raise_for_response_passes_2xx():
    raise_for_response(_response(201, "POST"))


def test_exception_carries_context_but_no_header_values_or_query():
    token = "tok-" + secrets.token_hex(8)
    SECRETS.add(token)
    body = f'{{"error":"No lookup value found for group {token}","trace":"{"x" * 5000}"}}'
    resp = _response(
        422,
        "POST",
        url=f"{BASE}/api/v1/tickets?expand=true&customer=jane@example.com",
        body=body,
        headers={"X-Request-Id": "req-42", "Set-Cookie": "session=cookie-value-123"},
    )
    with pytest.raises(Rejected) as info:
        raise_for_response(resp)
    exc = info.value
    assert exc.path == "/api/v1/tickets"
    assert exc.request_id == "req-42"
    assert exc.body_excerpt is not None
    assert len(exc.body_excerpt) <= 1024
    for text in (str(exc), repr(exc), exc.body_excerpt, exc.message):
        assert token not in text
        assert "cookie-value-123" not in text
        assert "jane@example.com" not in text
    assert MASK in exc.body_excerpt
    assert "No lookup value found" in str(exc)


def test_request_id_with_odd_characters_is_dropped():
    resp = _response(404, "GET", headers={"X-Request-Id": "abc\r\ninjected: yes"})
    with pytest.raises(NotFound) as info:
        raise_for_response(resp)
    assert info.value.request_id is None


def test_rate_limited_carries_clamped_retry_after(clock):
    resp = _response(429, "GET", headers={"Retry-After": "100000"})
    with pytest.raises(RateLimited) as info:
        raise_for_response(resp, clock=clock)
    assert info.value.retry_after == RETRY_AFTER_MAX


# -- Retry-After ----------------------------------------------------------------------------

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 12 ", 12.0),
        ("0", 0.0),
        ("1000", 300.0),
        (format_datetime(NOW + timedelta(seconds=42), usegmt=True), 42.0),
        (format_datetime(NOW - timedelta(seconds=42), usegmt=True), 0.0),
        ("Tuesday, 01-Dec-26 09:01:00 GMT", 60.0),  # RFC 850 form
        ("-5", 0.0),
        ("1.5", 0.0),
        ("soon", 0.0),
        ("", 0.0),
        (None, 0.0),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, NOW) == pytest.approx(expected)


@given(st.text(max_size=40))
def test_parse_retry_after_never_escapes_its_bounds(value):
    assert 0.0 <= parse_retry_after(value, NOW, cap=300.0) <= 300.0


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_parse_retry_after_dates_are_relative_to_now(offset):
    value = format_datetime(NOW + timedelta(seconds=offset), usegmt=True)
    assert parse_retry_after(value, NOW, cap=300.0) == min(max(offset, 0), 300)


# -- request budget -------------------------------------------------------------------------


def test_token_bucket_limits_the_request_rate(rsps, clock):
    rsps.add("GET", f"{BASE}/api/v1/a", json={})
    client = make_client(clock, requests_per_minute=60, burst=10)
    for _ in range(13):
        client.get_json("/api/v1/a")
    assert len(rsps.calls) == 13
    # nine banked tokens (the tenth request of the first second is the refill), then one a second
    assert clock.sleeps == pytest.approx([1.0, 1.0, 1.0, 1.0])


def test_token_bucket_refills_with_time(rsps, clock):
    rsps.add("GET", f"{BASE}/api/v1/a", json={})
    client = make_client(clock, requests_per_minute=60, burst=3)
    client.get_json("/api/v1/a")
    client.get_json("/api/v1/a")
    clock.advance(timedelta(seconds=5))
    client.get_json("/api/v1/a")
    client.get_json("/api/v1/a")
    assert clock.sleeps == []


class _CountedSleeps(FakeClock):
    def sleep(self, seconds: float) -> None:
        if len(self.sleeps) > 50:
            raise AssertionError(f"still waiting after {len(self.sleeps)} sleeps")
        super().sleep(seconds)


def test_a_token_short_by_less_than_the_clocks_resolution_is_not_waited_for_forever():
    """Found by the property test below: at 7 a minute a wait is no whole number of
    microseconds, the clock rounds it, the bucket is left a hair short of a token, and the
    next wait rounded to nothing — ``acquire`` slept in a loop that never ended."""
    clock = _CountedSleeps()
    bucket = TokenBucket(7, 11, clock)
    waits = [bucket.acquire() for _ in range(14)]
    assert waits[:10] == [0.0] * 10  # the bank
    assert waits[10] == pytest.approx(1.0)  # what the bank held above ten, topped up
    assert waits[11:] == [pytest.approx(60 / 7)] * 3
    assert len(clock.sleeps) == 4  # one sleep per token


def _busiest_second(stamps: list[float]) -> int:
    """The most requests any closed one-second window holds (a busiest window can always be
    slid to start at a request)."""
    return max(sum(1 for t in stamps if start <= t <= start + 1.0) for start in stamps)


def _stamping_client(rsps, clock, policy: HttpPolicy) -> tuple[HttpClient, list[float]]:
    stamps: list[float] = []

    def answer(request):
        stamps.append(clock.monotonic())
        return (200, {}, "{}")

    rsps.add_callback("GET", f"{BASE}/api/v1/a", callback=answer)
    client = HttpClient(BASE, {"Authorization": "Token token=t-1"}, policy, clock)
    return client, stamps


def test_the_default_budget_holds_ten_requests_in_any_second(rsps, clock):
    client, stamps = _stamping_client(rsps, clock, HttpPolicy())
    for _ in range(40):
        client.get_json("/api/v1/a")
    assert len(stamps) == 40
    assert _busiest_second(stamps) == 10  # was 11: a full bucket of ten plus the refill
    assert stamps[-1] - stamps[0] == pytest.approx(31.0)  # 60 a minute in the long run


@given(
    pauses=st.lists(st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=3.0)), max_size=60)
)
def test_no_second_ever_holds_more_than_the_burst(pauses):
    """Whatever the caller's own pauses between requests, no one-second window holds more
    than ``burst`` requests."""
    clock = FakeClock()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        client, stamps = _stamping_client(mock, clock, HttpPolicy())
        for pause in pauses:
            clock.advance(timedelta(seconds=pause))
            client.get_json("/api/v1/a")
    assert len(stamps) == len(pauses)
    assert not stamps or _busiest_second(stamps) <= HttpPolicy().burst


# -- bodies ---------------------------------------------------------------------------------


def test_download_returns_bytes(rsps, clock):
    rsps.add("GET", f"{BASE}/api/v1/f", body=b"\x00\x01payload", content_type="image/png")
    assert make_client(clock).download("/api/v1/f", max_bytes=9) == b"\x00\x01payload"
    assert rsps.calls[0].request.req_kwargs["stream"] is True


def test_download_refuses_a_declared_oversize_body(rsps, clock):
    rsps.add("GET", f"{BASE}/api/v1/f", body=b"x" * 50, headers={"Content-Length": "50"})
    with pytest.raises(TooLarge) as info:
        make_client(clock).download("/api/v1/f", max_bytes=10)
    assert info.value.size_seen == 50


def test_download_counts_bytes_when_the_length_is_not_declared(rsps, clock):
    rsps.add("GET", f"{BASE}/api/v1/f", body=b"x" * 350_000)
    with pytest.raises(TooLarge) as info:
        make_client(clock).download("/api/v1/f", max_bytes=100_000)
    assert 100_000 < info.value.size_seen <= 140_000


def test_non_json_answer_to_a_read_is_transient(rsps, clock):
    rsps.add("GET", f"{BASE}/api/v1/a", body="<html>proxy login</html>")
    with pytest.raises(TransientError, match="not JSON"):
        make_client(clock, max_attempts=1).get_json("/api/v1/a")


def test_non_json_answer_to_a_post_is_ambiguous(rsps, clock):
    rsps.add("POST", f"{BASE}/api/v1/a", status=201, body="<html>")
    with pytest.raises(AmbiguousWrite):
        make_client(clock).post_json("/api/v1/a", {"x": 1})
    assert len(rsps.calls) == 1


def test_empty_answer_is_none(rsps, clock):
    rsps.add("DELETE", f"{BASE}/api/v1/a", body="")
    assert make_client(clock).delete_json("/api/v1/a") is None


def test_paths_must_not_carry_a_query(clock):
    with pytest.raises(ValueError, match="query"):
        make_client(clock).get_json("/api/v1/users/search?query=jane")


# -- logging --------------------------------------------------------------------------------


def test_retry_is_logged_with_stable_names_and_no_query(rsps, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="connector")
    rsps.add("GET", f"{BASE}/api/v1/users/search", status=503)
    rsps.add("GET", f"{BASE}/api/v1/users/search", json=[])
    make_client(clock).get_json("/api/v1/users/search", params={"query": "jane@example.com"})
    retries = [r for r in caplog.records if r.getMessage().startswith("http.retry")]
    assert len(retries) == 1
    assert retries[0].levelno == logging.DEBUG  # an outage is said once, not per retry
    assert (
        retries[0]
        .getMessage()
        .startswith(
            "http.retry method=GET path=/api/v1/users/search status=503 reason=status "
            "attempt=1 wait="
        )
    )
    assert "jane@example.com" not in caplog.text


def test_auth_failure_is_left_to_the_caller_to_say(rsps, clock, caplog):
    """A refused token stops the worker, and the CLI says so in one line; the client only
    notes it once at DEBUG (it was an ERROR here, then again in the worker and the CLI)."""
    caplog.set_level(logging.DEBUG, logger="connector.http")
    rsps.add("GET", f"{BASE}/api/v1/a", status=401, json={"error": "Can't find User for Token"})
    client = make_client(clock)
    for _ in range(3):
        with pytest.raises(AuthError):
            client.get_json("/api/v1/a")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    noted = [r.getMessage() for r in caplog.records if "auth_failed" in r.getMessage()]
    assert noted == ["http.auth_failed method=GET path=/api/v1/a status=401"]
    assert len(rsps.calls) == 3  # never retried


def test_an_outage_leaves_reachability_to_the_worker(rsps, clock, caplog):
    """Whether the helpdesk is down is said once by the worker loop (which sees every
    adapter's errors); the client only notes each give-up at DEBUG, so an outage does not
    repeat a WARNING on every pass (issue 10, item 15)."""
    caplog.set_level(logging.DEBUG, logger="connector")
    client = make_client(clock, max_attempts=2)
    rsps.add("GET", f"{BASE}/api/v1/a", status=503)
    for _ in range(3):
        with pytest.raises(TransientError):
            client.get_json("/api/v1/a")
    giveups = [r for r in caplog.records if r.getMessage().startswith("http.giveup")]
    assert len(giveups) == 3
    assert {r.levelno for r in giveups} == {logging.DEBUG}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- helpers --------------------------------------------------------------------------------


def _response(
    status: int,
    method: str,
    *,
    url: str = f"{BASE}/api/v1/x",
    body: str = '{"error":"nope"}',
    headers: dict[str, str] | None = None,
) -> requests.Response:
    request = requests.Request(method, url).prepare()
    resp = requests.Response()
    resp.status_code = status
    resp.url = url
    resp.request = request
    resp._content = body.encode()
    resp.headers.update(headers or {})
    resp.encoding = "utf-8"
    return resp


def test_403_in_maintenance_mode_is_transient_not_a_refused_token():
    """Zammad answers 403 "Maintenance mode enabled!" to every user without
    admin.maintenance (reference §2.1): it is over when maintenance ends."""
    resp = _response(403, "GET", body='{"error":"Maintenance mode enabled!"}')
    with pytest.raises(Maintenance) as info:
        raise_for_response(resp)
    assert isinstance(info.value, TransientError)
    assert not isinstance(info.value, AuthError)
    plain = _response(403, "GET", body='{"error":"Not authorized"}')
    with pytest.raises(Forbidden):
        raise_for_response(plain)


def test_maintenance_is_not_retried_within_one_call(rsps, clock):
    rsps.add("GET", f"{BASE}/api/v1/a", status=403, json={"error": "Maintenance mode enabled!"})
    with pytest.raises(Maintenance):
        make_client(clock).get_json("/api/v1/a")
    assert len(rsps.calls) == 1


def test_helpdesk_error_is_the_common_base():
    assert all(
        issubclass(cls, HelpdeskError)
        for cls in (AmbiguousWrite, AuthError, Conflict, NotFound, RateLimited, Rejected)
    )


# -- the helpdesk's clock -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "offset"),
    [
        (None, None),  # no header: unknown, not zero
        ("not a date", None),
        ("Tue, 01 Dec 2026 09:00:00", None),  # no zone: cannot be placed
        ("Tue, 01 Dec 2026 08:55:00 GMT", timedelta(minutes=-5)),
        ("Tue, 01 Dec 2026 10:30:00 GMT", timedelta(minutes=90)),
        ("Tue, 01 Dec 2026 09:00:00 GMT", timedelta(0)),  # within the header's one second
    ],
)
def test_the_helpdesk_clock_offset_comes_from_the_date_header(rsps, date, offset):
    clock = FakeClock(datetime(2026, 12, 1, 9, 0, 0, 400_000, tzinfo=UTC))
    rsps.add("GET", f"{BASE}/api/v1/a", json={}, headers={"Date": date} if date else {})
    client = make_client(clock)
    assert client.server_offset is None  # before any answer
    client.get_json("/api/v1/a")
    expected = offset
    if offset not in (None, timedelta(0)):
        expected = offset - timedelta(microseconds=400_000)
    assert client.server_offset == expected


def test_the_offset_follows_the_latest_answer_and_a_refusal_counts(rsps, clock):
    rsps.add("GET", f"{BASE}/api/v1/a", json={}, headers={"Date": "Tue, 01 Dec 2026 08:50:00 GMT"})
    rsps.add("GET", f"{BASE}/api/v1/b", status=404, json={"error": "x"},
             headers={"Date": "Tue, 01 Dec 2026 09:10:00 GMT"})  # fmt: skip
    client = make_client(clock)
    client.get_json("/api/v1/a")
    assert client.server_offset == timedelta(minutes=-10)
    with pytest.raises(NotFound):
        client.get_json("/api/v1/b")
    assert client.server_offset == timedelta(minutes=10)


# -- stopping and liveness (issue 14, from the review) ----------------------------------------


class RecordingStop:
    """A stop signal that is set by the first wait it is asked for (as if SIGTERM arrived
    then), recording how long each wait would have been."""

    def __init__(self) -> None:
        self.stopped = False
        self.waits: list[float | None] = []

    def is_set(self) -> bool:
        return self.stopped

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        self.stopped = True
        return True


def test_a_stop_ends_the_retry_wait_and_makes_no_further_attempt(rsps, clock):
    """Retries and backoff used to sleep through a SIGTERM (``clock.sleep``): a 503 with
    ``Retry-After: 20`` meant 20 s before the next attempt, then more. Now the wait is on the
    stop signal, and once it is set the call ends with the last attempt's error."""
    stop = RecordingStop()
    client = HttpClient(
        BASE,
        {"Authorization": "Token token=stop-token-0001"},
        HttpPolicy(requests_per_minute=6000, burst=1000),
        clock,
        rng=random.Random(7),
        stop=stop,
    )
    rsps.get(f"{BASE}/api/v1/tickets/1", status=503, headers={"Retry-After": "20"})
    with pytest.raises(TransientError):
        client.get_json("/api/v1/tickets/1")
    assert len(rsps.calls) == 1
    assert stop.waits == [pytest.approx(20.0)]  # the Retry-After wait, on the stop signal
    assert clock.sleeps == []  # never a sleep that a stop cannot cut short


def test_a_clock_carrying_the_stop_is_a_stop_signal_too(rsps):
    """``escalations run`` hands the adapter a clock whose sleep waits on the worker's stop
    event (``StoppingClock``): the client stops retrying once it is set."""

    class Stopping(FakeClock):
        def __init__(self) -> None:
            super().__init__()
            self.stop = threading.Event()

        def sleep(self, seconds: float) -> None:
            self.stop.set()  # SIGTERM during the backoff
            super().sleep(seconds)

    clock = Stopping()
    assert isinstance(clock, StoppingClock)
    client = make_client(clock)
    rsps.get(f"{BASE}/api/v1/tickets/1", status=502)
    with pytest.raises(TransientError):
        client.get_json("/api/v1/tickets/1")
    assert len(rsps.calls) == 1  # max_attempts is 5: the stop ended it after the first


def test_waits_are_sliced_between_progress_calls(rsps, clock):
    """The watchdog ping (``progress``) used to come only before each attempt, so a
    ``Retry-After`` wait longer than half the watchdog interval looked like a hang. Now no
    stretch of a wait goes without a progress call for more than ``WAIT_SLICE``."""
    stamps: list[float] = []
    client = HttpClient(
        BASE,
        {"Authorization": "Token token=slice-token-0001"},
        HttpPolicy(requests_per_minute=6000, burst=1000),
        clock,
        rng=random.Random(7),
        progress=lambda: stamps.append(clock.monotonic()),
    )
    rsps.get(f"{BASE}/api/v1/tickets/1", status=503, headers={"Retry-After": "4"})
    rsps.get(f"{BASE}/api/v1/tickets/1", json={"id": 1})
    assert client.get_json("/api/v1/tickets/1") == {"id": 1}
    assert sum(clock.sleeps) == pytest.approx(4.0)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert max(gaps) <= WAIT_SLICE + 1e-9, gaps
    assert stamps[-1] - stamps[0] == pytest.approx(4.0)


def test_a_streamed_download_makes_progress_calls_as_bytes_arrive(rsps, clock):
    """An attachment that takes long to arrive is not a hang: each chunk read is bounded by
    the read timeout, and a progress call follows each."""
    calls: list[int] = []
    client = HttpClient(
        BASE,
        {"Authorization": "Token token=chunk-token-0001"},
        HttpPolicy(requests_per_minute=6000, burst=1000),
        clock,
        progress=lambda: calls.append(1),
    )
    body = b"x" * (5 * 64 * 1024)
    rsps.get(f"{BASE}/api/v1/attachment/1", body=body)
    assert client.download("/api/v1/attachment/1", max_bytes=len(body)) == body
    assert len(calls) >= 2 + 5  # around the attempt, then one per chunk


# -- the proxy: only the setting, never the environment (issue 14, from the review) ----------


class RecordingProxy:
    """A loopback TCP server that records the first line of every request and refuses it
    (403), as a proxy would refuse a CONNECT."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.lines.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxies() -> Iterator[tuple[RecordingProxy, RecordingProxy]]:
    configured, from_environment = RecordingProxy(), RecordingProxy()
    yield configured, from_environment
    configured.close()
    from_environment.close()


@pytest.fixture
def proxy_environment(
    monkeypatch: pytest.MonkeyPatch, proxies: tuple[RecordingProxy, RecordingProxy]
) -> RecordingProxy:
    """``HTTPS_PROXY``/``ALL_PROXY`` pointing at a proxy the client must never use."""
    _, from_environment = proxies
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", from_environment.url)
    monkeypatch.setenv("ALL_PROXY", from_environment.url)
    return from_environment


def test_the_configured_proxy_is_used_and_the_environment_is_not(
    proxies: tuple[RecordingProxy, RecordingProxy], proxy_environment: RecordingProxy, clock
) -> None:
    """requests read ``HTTPS_PROXY`` (and ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, ``.netrc``)
    from the environment on every request; the session now trusts none of it, and the
    policy's proxy is the only one."""
    configured, _ = proxies
    policy = HttpPolicy(requests_per_minute=6000, burst=1000, max_attempts=1, proxy=configured.url)
    client = HttpClient(
        "https://zammad.example", {"Authorization": "Token token=proxy-token-0001"}, policy, clock
    )
    with pytest.raises(HelpdeskError):
        client.get_json("/api/v1/users/me")
    assert [line.rsplit(" ", 1)[0] for line in configured.lines] == ["CONNECT zammad.example:443"]
    assert proxy_environment.lines == []


def test_without_a_proxy_setting_the_environment_proxy_is_not_used(
    proxy_environment: RecordingProxy, clock
) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: a direct connection is refused
    client = HttpClient(
        f"https://127.0.0.1:{port}",
        {"Authorization": "Token token=proxy-token-0002"},
        HttpPolicy(requests_per_minute=6000, burst=1000, max_attempts=1),
        clock,
    )
    with pytest.raises(TransientError, match="could not connect"):
        client.get_json("/api/v1/users/me")
    assert proxy_environment.lines == []
    assert build_session(HttpPolicy()).trust_env is False


@pytest.mark.parametrize(
    "proxy",
    ["socks5://127.0.0.1:1080", "http://user:secret@proxy:3128", "http://proxy:3128/x", "proxy"],
)
def test_a_proxy_url_that_is_refused(proxy: str) -> None:
    with pytest.raises(UnsafeURLError):
        HttpPolicy(proxy=proxy)


# -- client CPU: no runtime-checkable Protocol checks per request (issue 15) ----------------


def test_a_request_asks_no_runtime_protocol_isinstance(rsps, clock, monkeypatch):
    """requests' ``Session.request`` merges settings and encodes a params dict through
    ``isinstance`` against its runtime-checkable Protocols (8 a request before, each walking
    the Protocol's attributes); the client prepares the request itself and asks none."""
    import typing

    checks: list[str] = []
    original = typing._ProtocolMeta.__instancecheck__  # type: ignore[attr-defined]

    def counted(cls: type, instance: object) -> bool:
        checks.append(cls.__name__)
        return bool(original(cls, instance))

    client = make_client(clock)
    rsps.add("GET", f"{BASE}/api/v1/tickets/1", json={"id": 1})
    rsps.add("PUT", f"{BASE}/api/v1/tickets/1", json={"id": 1})
    rsps.add("POST", f"{BASE}/api/v1/tickets/search", json=[])
    monkeypatch.setattr(typing._ProtocolMeta, "__instancecheck__", counted)
    client.get_json("/api/v1/tickets/1", params={"expand": "true"})
    client.put_json("/api/v1/tickets/1", {"state": "open"}, params={"expand": True})
    client.post_json("/api/v1/tickets/search", {"condition": {}}, idempotent=True)
    monkeypatch.undo()
    assert checks == []
    assert [c.request.url for c in rsps.calls] == [
        f"{BASE}/api/v1/tickets/1?expand=true",
        f"{BASE}/api/v1/tickets/1?expand=True",
        f"{BASE}/api/v1/tickets/search",
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"expand": "true"},
        {"query": "a b&c=d", "page": 2, "per_page": 200},
        {"permissions[]": ["ticket.agent", "admin"], "group_ids[3]": "full"},
        {"dropped": None, "kept": "ü"},
        {"flag": True, "empty": ""},
        {},
    ],
)
def test_the_query_is_encoded_as_requests_encodes_it(rsps, clock, params):
    client = make_client(clock)
    rsps.add("GET", f"{BASE}/api/v1/x", json={})
    client.get_json("/api/v1/x", params=params)
    expected = requests.Request("GET", f"{BASE}/api/v1/x", params=params).prepare().url
    assert rsps.calls[0].request.url == expected


def test_the_session_s_headers_cookies_and_hooks_still_apply(rsps, clock):
    session = build_session(HttpPolicy())
    session.cookies.set("_zammad_session", "abc", domain="zammad.example")
    seen: list[int] = []
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r.status_code))
    client = HttpClient(
        BASE,
        {"Authorization": "Token token=session-0001"},
        HttpPolicy(requests_per_minute=6000, burst=1000),
        clock,
        session=session,
    )
    rsps.add("GET", f"{BASE}/api/v1/x", json={})
    client.get_json("/api/v1/x")
    sent = rsps.calls[0].request.headers
    assert sent["Accept"] == "application/json"
    assert sent["User-Agent"] == "helpdesk-escalations"
    assert sent["Authorization"] == "Token token=session-0001"
    assert sent["Cookie"] == "_zammad_session=abc"
    assert seen == [200]
