"""Serve a sandbox over HTTP on a loopback socket (``ThreadingHTTPServer`` in a daemon thread)
for the demo, the CLI and end-to-end tests with real sockets and real timeouts.

Transport faults act on the socket: ``Refuse`` resets the connection before reading the
request; ``LoseResponse`` applies the request, then resets (``mode="reset"``) or stays
silent until the client hangs up or ``hold`` seconds pass (``mode="timeout"``);
``Truncate`` sends half the body; ``Slow`` answers after a real sleep. ``latency`` (seconds)
delays every answer, as a network round trip would (the benchmarks use it)."""

from __future__ import annotations

import logging
import select
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.core import ZammadSandbox
from sandbox.faults import LoseResponse, Refuse, Slow, Truncate

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle and the client's
    # delayed ACK hold every keep-alive answer back by about 40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        log.debug("sandbox.http %s", format % args)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items()}
        query = parse_qs(parts.query, keep_blank_values=True)
        sandbox = self.server.sandbox
        try:
            exchange = sandbox.process(self.command, parts.path, query, headers, body)
        except Exception:
            log.exception("sandbox.error %s %s", self.command, parts.path)
            self._answer(500, {"Content-Type": "application/json"}, b'{"error":"sandbox bug"}')
            return
        if self.server.latency:
            self.server.stopping.wait(self.server.latency)
        fault = exchange.fault
        if isinstance(fault, Refuse):
            self._reset()
            return
        if isinstance(fault, LoseResponse):
            if fault.mode == "timeout":
                self._hold_silent(fault.hold)
            self._reset()
            return
        if isinstance(fault, Slow):
            self.server.stopping.wait(fault.seconds)
        if isinstance(fault, Truncate):
            self._answer(exchange.status, exchange.headers, exchange.body, truncate=True)
            self._reset()
            return
        self._answer(exchange.status, exchange.headers, exchange.body)

    def handle_one_request(self) -> None:
        # Refuse acts before the request line is even read.
        if self.server.sandbox.faults.pending and self._refuse_next():
            self._reset()
            self.close_connection = True
            return
        super().handle_one_request()

    def _refuse_next(self) -> bool:
        """Peek at the request line; a matching ``Refuse`` resets the connection unread."""
        try:
            ready, _, _ = select.select([self.connection], [], [], 5)
            if not ready:
                return False
            head = self.connection.recv(4096, socket.MSG_PEEK).split(b"\r\n", 1)[0]
        except OSError:
            return False
        fields = head.decode("latin-1").split()
        if len(fields) < 2:
            return False
        method, path = fields[0], urlsplit(fields[1]).path
        return self.server.sandbox.faults.take(method, path, only=Refuse) is not None

    def _answer(
        self, status: int, headers: dict[str, str], body: bytes, *, truncate: bool = False
    ) -> None:
        # not send_response: it adds a Date in real time, and the sandbox sends its own
        self.log_request(status)
        self.send_response_only(status)
        self.send_header("Server", self.version_string())
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if truncate else body)
        self.wfile.flush()

    def _hold_silent(self, seconds: float) -> None:
        """Say nothing until the client gives up (closes), ``seconds`` pass or shutdown."""
        deadline = time.monotonic() + seconds
        while not self.server.stopping.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select([self.connection], [], [], 0.05)
            if ready:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return
                except OSError:
                    return

    def _reset(self) -> None:
        """Close with RST, so the client sees ``Connection reset by peer``."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.server.resets.add(self.connection)
        self.wfile = _Discard()  # type: ignore[assignment]  # nothing more reaches the client

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve


class _Discard:
    closed = False

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], sandbox: ZammadSandbox, latency: float = 0.0
    ) -> None:
        self.sandbox = sandbox
        self.latency = latency
        self.stopping = threading.Event()
        self.resets: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def shutdown_request(self, request: Any) -> None:
        if request in self.resets:
            self.resets.discard(request)
            self.close_request(request)  # no FIN first: the linger-0 close sends RST
            return
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("sandbox.http connection error from %s: %r", client_address, sys.exc_info()[1])


class SandboxServer:
    """A running sandbox server. ``url`` is its base URL; use as a context manager or call
    ``shutdown()``. ``latency``: seconds added to every answer."""

    def __init__(
        self,
        sandbox: ZammadSandbox,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
    ) -> None:
        self.sandbox = sandbox
        self._server = _Server((host, port), sandbox, latency)
        address = self._server.server_address
        raw_host = address[0]
        self.host = raw_host.decode() if isinstance(raw_host, bytes) else str(raw_host)
        self.port = int(address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def latency(self) -> float:
        return self._server.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._server.latency = seconds

    def shutdown(self) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


def serve(
    sandbox: ZammadSandbox, host: str = "127.0.0.1", port: int = 0, *, latency: float = 0.0
) -> SandboxServer:
    """Start serving ``sandbox`` on ``host:port`` (0: any free port) in a daemon thread,
    each answer ``latency`` seconds late."""
    return SandboxServer(sandbox, host, port, latency=latency)
