"""Mount a sandbox into a ``responses.RequestsMock``: every request under ``base_url`` is
answered by the sandbox, through its fault queue.

Faults that concern the transport become the exceptions ``requests`` would raise:
``Refuse`` → ``ConnectionError(MaxRetryError(reason=NewConnectionError))``, as for a refused
TCP connect (nothing applied); ``LoseResponse`` → ``ReadTimeout`` or
``ConnectionError`` *after* the request was applied; ``Truncate`` → ``ChunkedEncodingError``
after applying; ``Slow`` → ``ReadTimeout`` after applying when the request's read timeout is
shorter than the delay (nothing sleeps).

The sandbox is a whole server, not a list of expectations: its routes never count as
"not fired" for ``assert_all_requests_are_fired``."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import responses
import urllib3

from sandbox.core import ZammadSandbox
from sandbox.faults import LoseResponse, Refuse, Slow, Truncate

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


class _SandboxRoute(responses.CallbackResponse):
    @property
    def call_count(self) -> int:
        return max(len(self.calls), 1)


def _read_timeout(request: Any) -> float | None:
    timeout = getattr(request, "req_kwargs", {}).get("timeout")
    if isinstance(timeout, tuple):
        timeout = timeout[1] if len(timeout) > 1 else timeout[0]
    return float(timeout) if isinstance(timeout, int | float) else None


def mount(sandbox: ZammadSandbox, rsps: responses.RequestsMock, base_url: str) -> None:
    """Answer every request under ``base_url`` from ``sandbox``."""
    base = base_url.rstrip("/")
    base_path = urlsplit(base).path
    pattern = re.compile(re.escape(base) + r"(?:[/?#].*)?$")

    def callback(request: Any) -> tuple[int, dict[str, str], bytes] | Exception:
        parts = urlsplit(str(request.url))
        path = parts.path[len(base_path) :] if base_path else parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        exchange = sandbox.process(request.method, path, query, dict(request.headers), body)
        fault = exchange.fault
        if isinstance(fault, Refuse):
            # exactly what requests raises when the TCP connect is refused
            reason = urllib3.exceptions.NewConnectionError(
                None,  # type: ignore[arg-type]
                "Failed to establish a new connection: [Errno 111] Connection refused",
            )
            return requests.exceptions.ConnectionError(
                urllib3.exceptions.MaxRetryError(None, str(request.url), reason),  # type: ignore[arg-type]
                request=request,
            )
        if isinstance(fault, LoseResponse):
            if fault.mode == "reset":
                return requests.exceptions.ConnectionError(
                    "sandbox fault: ('Connection aborted.', "
                    "ConnectionResetError(104, 'Connection reset by peer'))",
                    request=request,
                )
            return requests.exceptions.ReadTimeout(
                f"sandbox fault: read timed out ({request.method} {path})", request=request
            )
        if isinstance(fault, Truncate):
            return requests.exceptions.ChunkedEncodingError(
                "sandbox fault: ('Connection broken: IncompleteRead')", request=request
            )
        if isinstance(fault, Slow):
            read_timeout = _read_timeout(request)
            if read_timeout is not None and read_timeout < fault.seconds:
                return requests.exceptions.ReadTimeout(
                    f"sandbox fault: read timed out after {read_timeout}s", request=request
                )
        return exchange.status, exchange.headers, exchange.body

    for method in METHODS:
        rsps.add(_SandboxRoute(method, pattern, callback=callback, content_type=None))
