"""Fault injection for the sandbox: a queue of faults, each matched by HTTP method and a
regular expression searched in the request path, each firing a given number of times.

============== ============================== =========================================
fault          the write is applied?          what the client sees
============== ============================== =========================================
RateLimited    no                             429, ``Retry-After`` (seconds or HTTP-date)
ServerError    no (``apply=True``: yes)       a 5xx (nginx page for 502/503/504)
Refuse         no                             connect-phase error (socket: reset, unread)
LoseResponse   yes                            read timeout, or a connection reset
Truncate       yes                            a body cut short
Slow           yes                            the answer after ``seconds``
============== ============================== =========================================

Faults are checked before authentication, as a proxy in front of Zammad would act."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Literal


@dataclass
class Fault:
    """Base: ``method`` (``"*"`` for any) and ``path`` (a regex searched in the path)."""

    method: str = "*"
    path: str = ".*"
    times: int = 1

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("*", method.upper()):
            return False
        return re.search(self.path, path) is not None


@dataclass
class RateLimited(Fault):
    """429 with ``Retry-After``: an int is delta-seconds, a datetime an HTTP-date, a str is
    sent as is, ``None`` sends no header. The body is rack-attack's ``text/plain``."""

    retry_after: int | datetime | str | None = 7

    def header(self) -> str | None:
        if self.retry_after is None:
            return None
        if isinstance(self.retry_after, datetime):
            return format_datetime(self.retry_after, usegmt=True)
        return str(self.retry_after)


@dataclass
class ServerError(Fault):
    """A 5xx. ``apply=True`` applies the request first (a gateway timeout after the backend
    did the work)."""

    status: int = 503
    apply: bool = False
    retry_after: int | None = None


@dataclass
class Refuse(Fault):
    """Never reaches the server. In ``responses`` it raises ``ConnectionError``; on the
    socket server the connection is reset before the request is read."""


@dataclass
class LoseResponse(Fault):
    """Applies the request, then the answer is lost: ``mode="timeout"`` (``ReadTimeout``;
    the socket server holds the connection silent until the client gives up or ``hold``
    seconds pass) or ``mode="reset"`` (the connection is reset)."""

    mode: Literal["timeout", "reset"] = "timeout"
    hold: float = 30.0


@dataclass
class Truncate(Fault):
    """Applies the request, then sends only the first half of the body (with the full
    ``Content-Length``) and closes."""


@dataclass
class Slow(Fault):
    """Applies the request and answers after ``seconds``. In ``responses`` nothing sleeps:
    a request whose read timeout is shorter raises ``ReadTimeout`` after applying."""

    seconds: float = 5.0


@dataclass
class FaultQueue:
    """Faults in insertion order; the first match fires and loses one of its ``times``."""

    _pending: list[Fault] = field(default_factory=list)
    fired: list[tuple[str, str, str]] = field(default_factory=list)
    """``(fault class name, method, path)`` for every fault that fired."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> Fault:
        if fault.times < 1:
            raise ValueError("a fault needs times >= 1")
        with self._lock:
            self._pending.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._pending)

    def take(self, method: str, path: str, *, only: type[Fault] | None = None) -> Fault | None:
        """Fire the first pending fault matching the request; with ``only``, fire it only if
        it is of that type (and otherwise leave the queue alone)."""
        with self._lock:
            for fault in self._pending:
                if fault.matches(method, path):
                    if only is not None and not isinstance(fault, only):
                        return None
                    fault.times -= 1
                    if fault.times <= 0:
                        self._pending.remove(fault)
                    self.fired.append((type(fault).__name__, method.upper(), path))
                    return fault
        return None


_NGINX_TITLES = {
    500: "500 Internal Server Error",
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


def error_page(status: int) -> bytes:
    title = _NGINX_TITLES.get(status, f"{status} Error")
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()
