"""SIGTERM stops the worker promptly even mid-call (issue 14 #2): against a helpdesk that
accepts connections and never answers, the worker used to go on through its 30-second read
timeouts and retries for minutes after the signal (154 s seen), past systemd's 90-second stop
timeout. Now the call is abandoned after a short grace and the worker exits 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from escalations.app.commands import STOP_GRACE_SECONDS
from escalations.clock import SystemClock
from escalations.store.sqlite import SqliteStore
from jobs import sync
from sandbox import RateLimited, ZammadSandbox, serve

ROOT = Path(__file__).resolve().parents[3]


class Silent:
    """A loopback server that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)  # kept open, never answered
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


def test_sigterm_mid_call_exits_0_within_10_seconds(silent: Silent, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ESCALATIONS_")}
    env.update(
        PYTHONPATH=str(ROOT),
        ESCALATIONS_HELPDESK_URL=f"http://127.0.0.1:{silent.port}",
        ESCALATIONS_HELPDESK_TOKEN="silent-helpdesk-token-0001",
        ESCALATIONS_STATE_DIR=str(tmp_path / "state"),
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "escalations", "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert silent.accepted.wait(20), "the worker never called the helpdesk"
        time.sleep(0.5)  # well inside its 30-second read timeout
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=15)
        took = time.monotonic() - signalled
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, stderr
    assert took < 10, f"stop took {took:.1f} s"
    assert "worker.stop_forced" in stderr
    assert "Traceback" not in stderr
    # the forced stop gives up the jobs' leadership too (it used to keep the lease rows
    # until they expired: a standby worker waited LEADER_LEASE_RUNS intervals)
    store = SqliteStore(tmp_path / "state" / "escalations.sqlite3", SystemClock())
    try:
        assert store.lease(f"lease:{sync.NAME}") is None
        assert store.lease(f"lease:{sync.COPY}") is None
    finally:
        store.close()


def test_sigterm_during_a_retry_wait_ends_it_at_once(tmp_path: Path) -> None:
    """The helpdesk says 429 ``Retry-After: 25``: the retry wait used to be a sleep that
    SIGTERM could not end (only the 5-second alarm did). Now it waits on the stop event: the
    worker exits 0 at once, without forcing its stop."""
    sandbox = ZammadSandbox.demo()
    sandbox.faults.add(RateLimited(method="*", path="/api/v1/tickets/search", retry_after=25))
    with serve(sandbox) as server:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ESCALATIONS_")}
        env.update(
            PYTHONPATH=str(ROOT),
            ESCALATIONS_HELPDESK_URL=server.url,
            ESCALATIONS_HELPDESK_TOKEN=sandbox.token_of("escalation-bot"),
            ESCALATIONS_STATE_DIR=str(tmp_path / "state"),
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "escalations", "run"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 20
            while not sandbox.faults.fired and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sandbox.faults.fired, "the worker never searched"
            time.sleep(0.5)  # inside the 25-second wait
            signalled = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=15)
            took = time.monotonic() - signalled
        finally:
            if worker.poll() is None:
                worker.kill()
    assert worker.returncode == 0, stderr
    assert "worker.stop_forced" not in stderr, stderr
    assert took < STOP_GRACE_SECONDS, f"stop took {took:.1f} s"
