"""Zammad's webhook wakes the poll (issue 13 item 2): through real HTTP on loopback — the
listener alone, then with a real ``Worker`` polling the sandbox, then the real
``escalations run`` process against a loopback sandbox — a signed delivery wakes a poll within
a second, and nothing else (a forged, replayed, oversized, misdirected call) does anything but
a refusal logged once."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from escalations.app import webhook
from escalations.app.cli import main
from escalations.app.webhook import WebhookServer, signature, signature_matches
from escalations.clock import FakeClock
from escalations.errors import ConfigError
from escalations.settings import load_settings
from jobs import sync
from jobs.context import JobContext, JobResult
from jobs.worker import WAKE_MIN_SECONDS, Job, Worker
from sandbox import ZammadSandbox, serve
from tests.jobs.conftest import World, make_world
from tests.reliability.test_crash_points import ROOT, Installation

SECRET = "zammad-signature-token-7f3a9c"
PAYLOAD = '{"ticket":{"id":4711,"title":"Müller: Broadband down"},"article":null}'.encode()
"""A body as Zammad sends it (Ruby ``to_json``: compact, UTF-8 unescaped)."""
CAP = 4096


def deliver(
    url: str,
    body: bytes = PAYLOAD,
    *,
    delivery: str | None = None,
    sign: str | None = SECRET,
    signature_header: str | None = None,
    method: str = "POST",
) -> requests.Response:
    """A call as Zammad makes it: POST JSON with its three headers (``delivery=""``: without
    ``X-Zammad-Delivery``)."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Zammad-Trigger": "escalations: wake the worker",
        "X-Zammad-Delivery": str(uuid.uuid4()) if delivery is None else delivery,
        "User-Agent": "Zammad User Agent",
    }
    if not headers["X-Zammad-Delivery"]:
        del headers["X-Zammad-Delivery"]
    if signature_header is not None:
        headers["X-Hub-Signature"] = signature_header
    elif sign is not None:
        headers["X-Hub-Signature"] = signature(sign, body)
    return requests.request(method, url, data=body, headers=headers, timeout=(4, 30))


def raw_exchange(address: tuple[str, int], head: bytes, timeout: float = 5.0) -> bytes:
    """Send ``head`` (and nothing more) on a raw socket; everything the server answers."""
    with socket.create_connection(address, timeout=timeout) as conn:
        conn.sendall(head)
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
        return answer


@pytest.fixture
def hook() -> Iterator[WebhookServer]:
    server = WebhookServer(
        "127.0.0.1", 0, secret=SECRET, wake=threading.Event(), max_body_bytes=CAP
    ).start()
    yield server
    server.close()


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("webhook.refused")]


# -- the signature, as Zammad computes it ---------------------------------------------------------


def test_the_signature_is_zammads_sha1_hmac_of_the_raw_body_in_hex() -> None:
    """``UserAgent.set_signature``: ``"sha1=#{OpenSSL::HMAC.hexdigest('sha1', token, body)}"``.
    The published HMAC-SHA1 test value, then OpenSSL itself (what Ruby's binding calls)."""
    assert (
        signature("key", b"The quick brown fox jumps over the lazy dog")
        == "sha1=de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
    )
    expected = hmac.new(SECRET.encode(), PAYLOAD, hashlib.sha1).hexdigest()
    assert signature(SECRET, PAYLOAD) == f"sha1={expected}"
    if shutil.which("openssl"):
        out = subprocess.run(
            ["openssl", "dgst", "-sha1", "-hmac", SECRET],
            input=PAYLOAD,
            capture_output=True,
            check=True,
        ).stdout.decode()
        assert out.strip().endswith(f"= {expected}")


def test_the_signature_covers_the_raw_bytes_not_the_json() -> None:
    """The same JSON written another way is another body: its signature does not match."""
    respaced = json.dumps(json.loads(PAYLOAD)).encode()  # spaces, \u00fc
    assert json.loads(respaced) == json.loads(PAYLOAD)
    assert not signature_matches(SECRET, respaced, signature(SECRET, PAYLOAD))
    assert signature_matches(SECRET, PAYLOAD, signature(SECRET, PAYLOAD))
    assert signature_matches(SECRET, PAYLOAD, signature(SECRET, PAYLOAD).upper())
    assert not signature_matches(SECRET, PAYLOAD, signature("another token", PAYLOAD))
    assert not signature_matches(SECRET, PAYLOAD, signature(SECRET, PAYLOAD).removeprefix("sha1="))
    assert not signature_matches(SECRET, PAYLOAD, "sha1=ünïcode")


# -- the listener over real HTTP -------------------------------------------------------------------


def test_a_signed_delivery_answers_200_and_sets_the_wake_event(
    hook: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="escalations.app.webhook")
    response = deliver(hook.url)
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert hook.wake.wait(1.0)
    assert refusals(caplog) == []
    delivered = [r for r in caplog.records if r.getMessage().startswith("webhook.delivery")]
    assert [r.levelno for r in delivered] == [logging.DEBUG]


@pytest.mark.parametrize(
    ("call", "status", "reason"),
    [
        (lambda url: deliver(url, sign="not the token"), 401, "bad_signature"),
        (lambda url: deliver(url, sign=None), 401, "no_signature"),
        (lambda url: deliver(url, signature_header="sha1=" + "0" * 40), 401, "bad_signature"),
        (lambda url: deliver(url, b"<xml/>"), 400, "not_json"),
        (lambda url: deliver(url, delivery=""), 400, "no_delivery"),
        (lambda url: deliver(url, delivery="x" * 500), 400, "bad_delivery"),
        (lambda url: deliver(url + "/other"), 404, "not_found"),
        (lambda url: deliver(url.removesuffix("/zammad/webhook") + "/"), 404, "not_found"),
        (lambda url: deliver(url, method="GET"), 405, "method_not_allowed"),
        (lambda url: deliver(url, method="PUT"), 405, "method_not_allowed"),
    ],
    ids=[
        "bad-signature",
        "no-signature",
        "zero-signature",
        "not-json",
        "no-delivery",
        "long-delivery",
        "other-path",
        "root",
        "get",
        "put",
    ],
)
def test_a_refused_call_does_not_wake(
    hook: WebhookServer, call: Callable[[str], requests.Response], status: int, reason: str
) -> None:
    response = call(hook.url)
    assert response.status_code == status
    assert response.json() == {"ok": False, "error": reason}
    if status == 405:
        assert response.headers["Allow"] == "POST"
    assert not hook.wake.wait(0.2)


def test_a_replayed_delivery_is_refused_with_409(hook: WebhookServer) -> None:
    delivery = str(uuid.uuid4())
    assert deliver(hook.url, delivery=delivery).status_code == 200
    assert hook.wake.wait(1.0)
    hook.wake.clear()
    again = deliver(hook.url, delivery=delivery)
    assert again.status_code == 409
    assert again.json() == {"ok": False, "error": "replayed"}
    assert not hook.wake.wait(0.2)


def test_a_refused_delivery_is_not_remembered(hook: WebhookServer) -> None:
    """Zammad retries a refused call with the same delivery id: judged afresh."""
    delivery = str(uuid.uuid4())
    assert deliver(hook.url, delivery=delivery, sign="wrong").status_code == 401
    assert deliver(hook.url, delivery=delivery).status_code == 200


def test_the_last_thousand_deliveries_are_remembered() -> None:
    server = WebhookServer("127.0.0.1", 0, secret=SECRET, wake=threading.Event())
    try:
        ids = [f"d{n}" for n in range(webhook.DELIVERIES_REMEMBERED + 1)]
        assert all(server.remember(i) for i in ids)
        assert not server.remember(ids[-1])
        assert not server.remember(ids[1])
        assert server.remember(ids[0])  # the oldest was forgotten: at worst one early poll
    finally:
        server.close()


def test_an_oversized_call_gets_413_before_its_body_is_sent(hook: WebhookServer) -> None:
    """Only the headers and 10 bytes of a body announced over the cap are sent; the answer
    comes anyway: the server did not wait for (or read) the body."""
    head = (
        f"POST /zammad/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-Zammad-Delivery: {uuid.uuid4()}\r\nX-Hub-Signature: sha1={'0' * 40}\r\n"
        f"Content-Length: {CAP + 1}\r\n\r\n"
    ).encode() + b'{"ticket":'
    started = time.monotonic()
    answer = raw_exchange(hook.address, head)
    assert answer.startswith(b"HTTP/1.0 413 "), answer[:80]
    assert answer.endswith(b'{"ok": false, "error": "too_large"}')
    assert time.monotonic() - started < 2
    assert not hook.wake.is_set()


def test_a_body_at_the_cap_is_read() -> None:
    body = json.dumps({"pad": "x" * (CAP - 20)}).encode().ljust(CAP, b" ")
    wake = threading.Event()
    with WebhookServer("127.0.0.1", 0, secret=SECRET, wake=wake, max_body_bytes=CAP) as server:
        server.start()
        assert len(body) == CAP
        assert deliver(server.url, body).status_code == 200
        assert deliver(server.url, body + b" ").status_code == 413


@pytest.mark.parametrize(
    ("length_header", "status", "reason"),
    [
        ("", 411, "no_length"),
        ("Content-Length: -5\r\n", 400, "bad_length"),
        ("Transfer-Encoding: chunked\r\n", 411, "no_length"),
    ],  # fmt: skip
    ids=["none", "negative", "chunked"],
)
def test_content_length_is_required(
    hook: WebhookServer, length_header: str, status: int, reason: str
) -> None:
    head = f"POST /zammad/webhook HTTP/1.1\r\nHost: x\r\n{length_header}\r\n".encode()
    answer = raw_exchange(hook.address, head)
    assert answer.startswith(f"HTTP/1.0 {status} ".encode()), answer[:80]
    assert answer.endswith(json.dumps({"ok": False, "error": reason}).encode())


def test_a_slow_client_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that sends part of its headers and then nothing is disconnected when the
    request's time is up, whatever it does meanwhile (here: one byte every 0.2 s)."""
    monkeypatch.setattr(webhook, "REQUEST_SECONDS", 0.8)
    with WebhookServer("127.0.0.1", 0, secret=SECRET, wake=threading.Event()) as server:
        server.start()
        with socket.create_connection(server.address, timeout=5) as conn:
            started = time.monotonic()
            conn.sendall(b"POST /zammad/webhook HTTP/1.1\r\n")
            closed = None
            for _ in range(40):
                try:
                    conn.sendall(b"X")
                except OSError:
                    closed = time.monotonic()
                    break
                conn.settimeout(0.2)
                try:
                    if conn.recv(4096) == b"":
                        closed = time.monotonic()
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed = time.monotonic()
                    break
            assert closed is not None, "the slow client was never cut off"
            assert closed - started < 2.5


def test_each_refusal_is_logged_once_per_reason_and_remote_and_never_a_secret(
    hook: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="escalations.app.webhook")
    forged = signature("guessed token", PAYLOAD)
    for _ in range(3):
        assert deliver(hook.url, sign="guessed token").status_code == 401
    for _ in range(2):
        assert deliver(hook.url, sign=None).status_code == 401
        assert deliver(hook.url + "x").status_code == 404
        assert deliver(hook.url, method="GET").status_code == 405
    delivery = str(uuid.uuid4())
    for _ in range(3):
        deliver(hook.url, delivery=delivery)
    assert refusals(caplog) == [
        "webhook.refused reason=bad_signature status=401 remote=127.0.0.1",
        "webhook.refused reason=no_signature status=401 remote=127.0.0.1",
        "webhook.refused reason=not_found status=404 remote=127.0.0.1",
        "webhook.refused reason=method_not_allowed status=405 remote=127.0.0.1",
        "webhook.refused reason=replayed status=409 remote=127.0.0.1",
    ]
    warnings = [r for r in caplog.records if r.getMessage().startswith("webhook.refused")]
    assert {r.levelno for r in warnings} == {logging.WARNING}
    text = caplog.text
    assert SECRET not in text
    assert forged.removeprefix("sha1=") not in text
    assert signature(SECRET, PAYLOAD).removeprefix("sha1=") not in text
    assert "Broadband" not in text


def test_a_refusal_that_goes_on_is_logged_again_with_the_count(
    hook: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Behind a proxy every call comes from 127.0.0.1: a secret rotated in Zammad only must
    not fall silent after its first line."""
    caplog.set_level(logging.WARNING, logger="escalations.app.webhook")
    now = [1000.0]
    hook.monotonic = lambda: now[0]
    for _ in range(3):
        assert deliver(hook.url, sign="old secret").status_code == 401
    now[0] += 601
    assert deliver(hook.url, sign="old secret").status_code == 401
    assert refusals(caplog) == [
        "webhook.refused reason=bad_signature status=401 remote=127.0.0.1",
        "webhook.refused reason=bad_signature status=401 remote=127.0.0.1 suppressed=2",
    ]


def test_ipv6_loopback() -> None:
    try:
        server = WebhookServer("::1", 0, secret=SECRET, wake=threading.Event())
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server:
        server.start()
        assert server.url.startswith("http://[::1]:")
        assert deliver(server.url).status_code == 200
        assert server.wake.wait(1.0)


# -- settings ------------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("ESCALATIONS_") or key == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(key)
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(tmp_path / "state"))


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("127.0.0.1:8766", "127.0.0.1:8766"),
        (" localhost:8766 ", "127.0.0.1:8766"),
        ("[::1]:8766", "[::1]:8766"),
        ("0.0.0.0:8766", "0.0.0.0:8766"),  # allowed: docs/webhook.md says put TLS in front
        ("10.1.2.3:1", "10.1.2.3:1"),
        ("", ""),
    ],
)
def test_a_listen_address_is_an_ip_or_localhost_and_a_port(given: str, kept: str) -> None:
    assert load_settings(webhook_listen=given).webhook_listen == kept


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    "given",
    [
        "8766",
        "127.0.0.1",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:http",
        "zammad.example.com:8766",
        "::1:8766",
        "[::1]",
        ":8766",
    ],  # fmt: skip
)
def test_a_bad_listen_address_names_the_setting(given: str) -> None:
    with pytest.raises(ConfigError, match="^ESCALATIONS_WEBHOOK_LISTEN: "):
        load_settings(webhook_listen=given)


@pytest.mark.usefixtures("clean_env")
def test_the_secret_comes_from_the_credential_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ESCALATIONS_WEBHOOK_SECRET", "from-the-environment")
    assert load_settings().webhook_secret.get_secret_value() == "from-the-environment"  # type: ignore[union-attr]
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "webhook-secret").write_text("from-the-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    settings = load_settings()
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "from-the-credential"
    assert "from-the-credential" not in repr(settings)
    monkeypatch.setenv("ESCALATIONS_WEBHOOK_SECRET", "")
    (credentials / "webhook-secret").unlink()
    assert load_settings().webhook_secret is None  # empty, as in settings.example.env


@pytest.mark.parametrize(
    ("env", "argv", "named"),
    [
        ({"ESCALATIONS_WEBHOOK_LISTEN": "127.0.0.1:8766"}, [], "ESCALATIONS_WEBHOOK_LISTEN is set"),
        ({}, ["--webhook", "127.0.0.1:8766"], "--webhook is set"),
    ],
    ids=["setting", "option"],
)
def test_run_with_a_listen_address_and_no_secret_exits_78(
    cli_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    argv: list[str],
    named: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["run", *argv]) == 78
    err = capsys.readouterr().err
    assert "ESCALATIONS_WEBHOOK_SECRET: missing" in err
    assert named in err
    assert not (cli_env / "escalations.sqlite3").exists()  # refused before the store


def test_run_with_a_bad_webhook_option_exits_78(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--webhook", "zammad.example.com:80"]) == 78
    assert "--webhook: the host must be an IP address or localhost" in capsys.readouterr().err


# -- a real Worker polling the sandbox -------------------------------------------------------------


@pytest.fixture
def polled(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    """The jobs' ``world`` (the sandbox behind ``responses``), letting loopback calls — the
    webhook's — through to the real socket."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_passthru("http://127.0.0.1")
        world = make_world(tmp_path, clock, rsps, None)
        yield world
        world.store.close()


def searches(world: World) -> int:
    return sum(1 for c in world.http_calls() if c == "POST /api/v1/tickets/search")


class Passes:
    """The poll and copy jobs, real, each run timed."""

    def __init__(self) -> None:
        self.at: list[tuple[str, float]] = []

    def job(self, name: str, run: Callable[[JobContext], JobResult]) -> Job:
        def timed(ctx: JobContext) -> JobResult:
            self.at.append((name, time.monotonic()))
            return run(ctx)

        return Job(name, timed, 3600)  # no tick inside the test: only wakes

    def of(self, name: str) -> list[float]:
        return [at for n, at in self.at if n == name]


def _wait(condition: Callable[[], Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_delivery_makes_a_real_worker_poll_within_a_second(polled: World) -> None:
    wake = threading.Event()
    passes = Passes()
    jobs = [passes.job(sync.NAME, sync.run), passes.job(sync.COPY, sync.run_copy)]
    worker = Worker(polled.ctx, jobs, executor=polled.installation.executor, wake=wake)
    with WebhookServer("127.0.0.1", 0, secret=SECRET, wake=wake) as hook:
        hook.start()
        thread = threading.Thread(target=worker.run_forever, daemon=True)
        thread.start()
        try:
            _wait(lambda: len(passes.of(sync.COPY)) == 1, 10)  # the first pass, at start
            time.sleep(0.3)
            before = searches(polled)

            assert deliver(hook.url, sign="forged").status_code == 401
            time.sleep(1.2)
            assert searches(polled) == before  # a forged call polls nothing

            answered = time.monotonic()
            assert deliver(hook.url).status_code == 200
            _wait(lambda: searches(polled) > before, 1.0)  # the poll, in the request log
            assert passes.of(sync.NAME)[-1] - answered < 1.0
            _wait(lambda: len(passes.of(sync.COPY)) == 2, 5)  # then the copy
        finally:
            polled.ctx.stop.set()
            thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_burst_of_wakes_is_one_or_two_passes_a_second_apart(polled: World) -> None:
    wake = threading.Event()
    passes = Passes()
    jobs = [passes.job(sync.NAME, sync.run), passes.job(sync.COPY, sync.run_copy)]
    worker = Worker(polled.ctx, jobs, executor=polled.installation.executor, wake=wake)
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    try:
        _wait(lambda: len(passes.of(sync.COPY)) == 1, 10)
        for _ in range(20):
            wake.set()
            time.sleep(0.02)
        time.sleep(WAKE_MIN_SECONDS + 0.8)
        polls = passes.of(sync.NAME)[1:]
        assert 1 <= len(polls) <= 2, polls
        assert all(b - a >= WAKE_MIN_SECONDS - 0.01 for a, b in zip(polls, polls[1:], strict=False))
        assert not wake.is_set()
        stopping = time.monotonic()
    finally:
        polled.ctx.stop.set()
        thread.join(timeout=5)
    assert time.monotonic() - stopping < 0.5  # waiting on the wake, a stop still ends it at once


# -- the real `escalations run` ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quiet(sandbox: ZammadSandbox, seconds: float, timeout: float = 30) -> None:
    """Until the sandbox has had no request for ``seconds``."""
    deadline = time.monotonic() + timeout
    count, since = len(sandbox.requests), time.monotonic()
    while time.monotonic() - since < seconds:
        assert time.monotonic() < deadline, "the worker never went quiet"
        time.sleep(0.05)
        if len(sandbox.requests) != count:
            count, since = len(sandbox.requests), time.monotonic()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Installation, str, Path]]:
    """``escalations run --webhook 127.0.0.1:PORT`` against a loopback sandbox, ticks an hour
    apart (so every poll after the first is a wake), settled after its first pass."""
    sandbox = ZammadSandbox.demo()
    with serve(sandbox) as server:
        install = Installation(sandbox, server, tmp_path / "state")
        port = _free_port()
        env = install.env(
            ESCALATIONS_WEBHOOK_SECRET=SECRET,
            ESCALATIONS_POLL_INTERVAL_SECONDS="3600",
            ESCALATIONS_COMMS_INTERVAL_SECONDS="3600",
            ESCALATIONS_ARCHIVE_INTERVAL_SECONDS="3600",
        )
        log_path = tmp_path / "worker.log"
        with log_path.open("w") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "escalations", "run", "--webhook", f"127.0.0.1:{port}"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        try:
            url = f"http://127.0.0.1:{port}/zammad/webhook"
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, log_path.read_text()
                    time.sleep(0.05)
            _quiet(sandbox, 1.0)
            yield install, url, log_path
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=15)
            finally:
                if proc.poll() is None:
                    proc.kill()
        assert code == 0, log_path.read_text()


def test_forged_calls_make_the_real_worker_do_nothing_and_a_signed_one_polls_at_once(
    running: tuple[Installation, str, Path],
) -> None:
    install, url, log_path = running
    install.flag()  # a poll now would create the escalation ticket
    install.sandbox.clear_requests()

    delivery = str(uuid.uuid4())
    forged = [
        deliver(url, sign="guessed", delivery=delivery),
        deliver(url, sign="guessed", delivery=delivery),
        deliver(url, sign=None),
        deliver(url, b"not json", sign=SECRET),
        deliver(url + "/../admin"),
        deliver(url, method="GET"),
    ]
    assert [r.status_code for r in forged] == [401, 401, 401, 400, 404, 405]
    time.sleep(1.5)
    assert install.sandbox.requests == []  # no poll, hence no write
    assert install.escalation_tickets() == []

    answered = time.monotonic()
    assert deliver(url, delivery=delivery).status_code == 200
    while not any(r[:2] == ("POST", "/api/v1/tickets/search") for r in install.sandbox.requests):
        assert time.monotonic() - answered < 1.0, "no poll within a second of the delivery"
        time.sleep(0.01)
    _quiet(install.sandbox, 1.0)
    assert len(install.escalation_tickets()) == 1  # what the flag asks a poll to do
    polled = list(install.sandbox.requests)

    install.sandbox.clear_requests()
    assert deliver(url, delivery=delivery).status_code == 409  # the replay
    time.sleep(1.5)
    assert install.sandbox.requests == []
    assert len(install.escalation_tickets()) == 1

    install.sandbox.clear_requests()
    assert deliver(url).status_code == 200  # a new delivery: a poll that finds nothing to do
    _quiet(install.sandbox, 1.0)
    assert install.writes() == [], "a wake on an unchanged helpdesk wrote"
    assert any(r[:2] == ("POST", "/api/v1/tickets/search") for r in install.sandbox.requests)
    assert polled  # for the message below, should the count check fail

    text = log_path.read_text()
    assert text.count("webhook.refused reason=bad_signature") == 1, text
    assert text.count("webhook.refused reason=no_signature") == 1, text
    assert "webhook.refused reason=replayed" in text
    assert SECRET not in text
