"""The worker as a ``Type=notify`` service (issue 14 #2): readiness, watchdog, status and
stopping datagrams, observed on a real ``AF_UNIX`` datagram socket — first from the notifier
alone, then from the real worker process against a loopback sandbox."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from escalations.app.systemd import Notifier
from escalations.store.sqlite import probe_lock
from sandbox import RateLimited, Slow, ZammadSandbox, serve
from tests.reliability.test_crash_points import ROOT, Installation


class Socket:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.2)
        self.received: list[tuple[float, str]] = []

    def drain(self, until: float) -> list[str]:
        """Collect datagrams until the monotonic time ``until``."""
        while time.monotonic() < until:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode()))
        return self.messages

    def wait_for(self, field: str, timeout: float) -> float:
        """When a datagram holding the line ``field`` arrived (waiting up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            for at, message in self.received:
                if field in message.splitlines():
                    return at
            if time.monotonic() > deadline:
                raise AssertionError(f"no {field!r} in {self.messages}")
            self.drain(time.monotonic() + 0.2)

    @property
    def messages(self) -> list[str]:
        return [m for _, m in self.received]

    def pings(self) -> list[float]:
        return [at for at, m in self.received if "WATCHDOG=1" in m.splitlines()]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[tuple[Socket, str]]:
    path = str(tmp_path / "notify")
    sock = Socket(path)
    yield sock, path
    sock.close()


# -- the notifier on its own -------------------------------------------------------------------


def test_notifier_sends_ready_status_and_stopping(notify: tuple[Socket, str]) -> None:
    sock, path = notify
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.ready("started")
    notifier.status("polling ok")
    notifier.status("polling ok")  # unchanged: not sent again
    notifier.stopping()
    notifier.close()
    assert sock.drain(time.monotonic() + 0.3) == [
        "READY=1\nSTATUS=started",
        "STATUS=polling ok",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_notifier_speaks_to_an_abstract_socket() -> None:
    name = f"helpdesk-escalations-test-{os.getpid()}"
    sock = Socket("\0" + name)
    try:
        Notifier({"NOTIFY_SOCKET": "@" + name}).send("READY=1")
        assert sock.drain(time.monotonic() + 0.3) == ["READY=1"]
    finally:
        sock.close()


def test_watchdog_pings_at_half_the_interval(notify: tuple[Socket, str]) -> None:
    sock, path = notify
    now = [100.0]
    notifier = Notifier(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())},
        monotonic=lambda: now[0],
    )
    assert notifier.watchdog_interval == 1.0
    for step in (0.0, 0.4, 0.4, 0.3, 1.0):  # at 100, 100.4, 100.8, 101.1, 102.1
        now[0] += step
        notifier.alive()
    assert sock.drain(time.monotonic() + 0.3) == ["WATCHDOG=1"] * 3  # 100, 101.1, 102.1


def test_no_socket_no_watchdog_no_error(tmp_path: Path) -> None:
    assert not Notifier({}).send("READY=1")
    other = Notifier(
        {"NOTIFY_SOCKET": str(tmp_path / "n"), "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
    )
    assert other.watchdog_interval is None  # the watchdog is another process's
    assert not other.send("READY=1")  # the socket does not exist: ignored, not raised


# -- the worker under a notify socket ------------------------------------------------------------


@pytest.fixture
def install(tmp_path: Path) -> Iterator[Installation]:
    sandbox = ZammadSandbox.demo()
    with serve(sandbox) as server:
        yield Installation(sandbox, server, tmp_path / "state")


FAST = {
    # WatchdogSec=2s: an attempt must end within 1 s (run refuses more, exit 78)
    "WATCHDOG_USEC": "2000000",
    "ESCALATIONS_HTTP_CONNECT_TIMEOUT": "0.3",
    "ESCALATIONS_HTTP_READ_TIMEOUT": "0.6",
}


def _start(install: Installation, path: str, **extra: str) -> subprocess.Popen[str]:
    env = install.env(NOTIFY_SOCKET=path, **{**FAST, **extra})
    return subprocess.Popen(
        [sys.executable, "-m", "escalations", "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(worker: subprocess.Popen[str]) -> tuple[int, str, float]:
    signalled = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    try:
        _, stderr = worker.communicate(timeout=15)
    finally:
        if worker.poll() is None:
            worker.kill()
    return worker.returncode, stderr, time.monotonic() - signalled


def test_worker_is_ready_after_the_lock_pings_and_says_stopping(
    install: Installation, notify: tuple[Socket, str]
) -> None:
    sock, path = notify
    worker = _start(install, path)
    try:
        sock.wait_for("READY=1", timeout=30)
        # READY only once the store's lock is held
        assert probe_lock(install.store_path) is not None
        sock.drain(time.monotonic() + 3.0)
        statuses = [m for m in sock.messages if m.startswith("STATUS=polling ok")]
        assert statuses, sock.messages
        assert "0 writes due" in statuses[-1]
        pings = sock.pings()  # every second (half of WATCHDOG_USEC) while idle
        assert len(pings) >= 3, sock.messages
        assert all(0.9 < b - a < 2.0 for a, b in zip(pings[1:], pings[2:], strict=False)), pings
    finally:
        code, stderr, took = _stop(worker)
    sock.drain(time.monotonic() + 0.3)
    assert code == 0, stderr
    assert "STOPPING=1\nSTATUS=stopping" in sock.messages
    assert sock.messages.index("STOPPING=1\nSTATUS=stopping") > sock.messages.index(
        next(m for m in sock.messages if m.startswith("READY=1"))
    )


def test_a_slow_helpdesk_never_starves_the_watchdog_and_sigterm_still_exits_0(
    install: Installation, notify: tuple[Socket, str]
) -> None:
    """The helpdesk is slow: its search says 429 ``Retry-After: 3`` twice, then answers
    after 30 s. Pings used to come only before each attempt, so a 3-second wait (or one
    attempt of connect + read timeout, 35 s by default) went past WatchdogSec/2 without one:
    systemd would kill a healthy worker. Now the timeouts fit the watchdog (run refuses
    others) and waits ping every second: no gap between pings reaches WatchdogSec (2 s here)
    while the helpdesk is slow. SIGTERM still ends it within 10 s."""
    sock, path = notify
    search = "/api/v1/tickets/search"
    install.sandbox.faults.add(RateLimited(method="*", path=search, retry_after=3, times=2))
    install.sandbox.faults.add(Slow(method="*", path=search, seconds=30))
    worker = _start(install, path)
    try:
        sock.wait_for("READY=1", timeout=30)
        deadline = time.monotonic() + 30
        while not install.sandbox.faults.fired and time.monotonic() < deadline:
            sock.drain(time.monotonic() + 0.1)
        assert install.sandbox.faults.fired, "the worker never searched"
        slow = time.monotonic()
        sock.drain(slow + 8.0)
        assert not install.sandbox.faults.pending, "the slow answer was never asked for"
        pings = [at for at in sock.pings() if at > slow - 2.0]
        gaps = [round(b - a, 2) for a, b in zip(pings, pings[1:], strict=False)]
        assert len(pings) >= 4, sock.messages
        assert max(gaps) < 2.0, f"a gap systemd would have killed for: {gaps}"
    finally:
        code, stderr, took = _stop(worker)
    assert code == 0, stderr
    assert took < 10, f"stop took {took:.1f} s"


def test_a_hung_main_loop_stops_the_pings(
    install: Installation, notify: tuple[Socket, str], tmp_path: Path
) -> None:
    """The pings come from the main loop, never a side thread: while the loop is stuck (here
    in the store, write-locked by another process, so its transaction waits in SQLite's busy
    handler), no ping is sent, and systemd would restart it. An HTTP call cannot hang this
    way for long: its timeouts are bounded below half the watchdog interval."""
    sock, path = notify
    worker = _start(install, path, ESCALATIONS_POLL_INTERVAL_SECONDS="1")
    blocker = None
    try:
        sock.wait_for("READY=1", timeout=30)
        sock.drain(time.monotonic() + 2.0)
        assert len(sock.pings()) >= 2, sock.messages
        blocker = sqlite3.connect(install.store_path, timeout=10, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        held = time.monotonic()
        sock.drain(held + 4.0)  # the next pass (within 1 s) waits for the lock
        blocker.execute("ROLLBACK")
        released = time.monotonic()
        during = [at for at in sock.pings() if held + 1.5 < at < released]
        assert during == [], [round(at - held, 2) for at in during]
        sock.drain(time.monotonic() + 2.5)
        assert any(at > released for at in sock.pings()), "the pings never came back"
    finally:
        if blocker is not None:
            blocker.close()
        code, stderr, _ = _stop(worker)
    assert code == 0, stderr


def test_sigterm_during_a_write_that_never_answers_then_the_next_start_finishes_it_once(
    install: Installation, notify: tuple[Socket, str]
) -> None:
    """The helpdesk applies the escalation ticket's create and never answers; SIGTERM
    abandons the call (exit 0 within 10 s); the next start finds the ticket by its marker and
    creates no second one."""
    sock, path = notify
    install.flag()
    install.sandbox.faults.add(Slow(method="POST", path=r"^/api/v1/tickets$", seconds=60))
    # the default timeouts (5 s + 30 s): the write is still waiting when SIGTERM comes; the
    # watchdog is 80 s, so they fit inside its half
    worker = _start(
        install,
        path,
        WATCHDOG_USEC="80000000",
        ESCALATIONS_HTTP_CONNECT_TIMEOUT="5",
        ESCALATIONS_HTTP_READ_TIMEOUT="30",
    )
    try:
        deadline = time.monotonic() + 30
        while not install.sandbox.faults.fired and time.monotonic() < deadline:
            sock.drain(time.monotonic() + 0.1)
        assert install.sandbox.faults.fired, "the worker never created the escalation ticket"
        time.sleep(0.5)
    finally:
        code, stderr, took = _stop(worker)
    assert code == 0, stderr
    assert took < 10, f"stop took {took:.1f} s"
    assert len(install.escalation_tickets()) == 1  # the write was applied before the silence

    install.run()  # the next start, no faults
    install.run()
    (ticket,) = install.escalation_tickets()
    assert ticket["title"].endswith("Broadband down since Monday")
