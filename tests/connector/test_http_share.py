"""``ThreadShare``: the requests of one thread (the nightly report's reads) take at most their
share of the client's request budget, are counted when answered, make no ``progress`` call and
stop once their share is told to."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import responses

from connector.http import HttpClient, HttpPolicy, Interrupted, ThreadShare
from escalations.clock import FakeClock

BASE = "https://zammad.example"


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{BASE}/api/v1/ping", json={"ok": True})
        mock.get(f"{BASE}/api/v1/broken", status=503)
        yield mock


def _client(clock: FakeClock, pings: list[str], rpm: int = 60, burst: int = 10) -> HttpClient:
    return HttpClient(
        BASE,
        {"Authorization": "Token token=share-token-0001"},
        HttpPolicy(requests_per_minute=rpm, burst=burst, max_attempts=1),
        clock,
        progress=lambda: pings.append(threading.current_thread().name),
    )


def _elapsed(
    clock: FakeClock, calls: int, share: ThreadShare | None, rpm: int = 60, burst: int = 10
) -> float:
    pings: list[str] = []
    client = _client(clock, pings, rpm, burst)
    start = clock.monotonic()
    if share is None:
        for _ in range(calls):
            client.get_json("/api/v1/ping")
    else:
        with share.on_this_thread():
            for _ in range(calls):
                client.get_json("/api/v1/ping")
    return clock.monotonic() - start


def test_a_half_share_takes_half_the_request_budget(rsps: responses.RequestsMock) -> None:
    whole = _elapsed(FakeClock(), 40, None)
    half = _elapsed(FakeClock(), 40, ThreadShare(share=0.5))
    assert whole == pytest.approx(31.0, abs=0.5)  # 9 banked, then one a second
    assert half == pytest.approx((40 - 4.5) / 0.5, abs=0.5)  # 4.5 banked, then one in two


def test_a_share_of_a_tiny_budget_is_still_a_share(rsps: responses.RequestsMock) -> None:
    # one request a minute: half of it is one in two minutes, not rounded up to the whole
    whole = _elapsed(FakeClock(), 4, None, rpm=1, burst=1)
    half = _elapsed(FakeClock(), 4, ThreadShare(share=0.5), rpm=1, burst=1)
    assert whole == pytest.approx(180.0, abs=1.0)  # one banked, then one a minute
    assert half == pytest.approx(360.0, abs=1.0)  # one banked, then one in two minutes


def test_answers_are_counted_and_no_progress_is_called(rsps: responses.RequestsMock) -> None:
    pings: list[str] = []
    client = _client(FakeClock(), pings)
    share = ThreadShare(share=0.5)
    with share.on_this_thread():
        for _ in range(3):
            client.get_json("/api/v1/ping")
        with pytest.raises(Exception, match="503"):
            client.get_json("/api/v1/broken")
    assert share.answered == 4  # the 503 is an answer too
    assert pings == []
    client.get_json("/api/v1/ping")  # outside the share: counted nowhere, and pinging
    assert share.answered == 4
    assert pings


def test_a_stopped_share_makes_no_request(rsps: responses.RequestsMock) -> None:
    stop = threading.Event()
    client = _client(FakeClock(), [])
    share = ThreadShare(share=0.5, stopping=stop.is_set)
    with share.on_this_thread():
        client.get_json("/api/v1/ping")
        stop.set()
        with pytest.raises(Interrupted):
            client.get_json("/api/v1/ping")
    assert len(rsps.calls) == 1


def test_a_share_is_in_zero_to_one() -> None:
    with pytest.raises(ValueError, match="share"):
        ThreadShare(share=0.0)
