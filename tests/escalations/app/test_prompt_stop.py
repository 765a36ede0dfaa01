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
