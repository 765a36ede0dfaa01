"""Talking to systemd as a ``Type=notify`` service: readiness, watchdog, status, stopping.

The protocol (sd_notify(3)) is one datagram of ``NAME=value`` lines to the ``AF_UNIX`` socket
named by ``$NOTIFY_SOCKET`` (a path, or an abstract name written with a leading ``@``). Without
that variable every call does nothing, so the same code runs from a terminal.

- ``READY=1`` once settings, mappings, migrations and the store's lock are done (never waiting
  for the helpdesk: a helpdesk that is down must not turn the start into a restart loop).
- ``WATCHDOG=1`` from the main loop only (``alive()``), at most every half of
  ``$WATCHDOG_USEC``: a pass stuck in a helpdesk call stops the pings, and systemd restarts the
  worker. Never from a side thread, which would keep pinging for a hung loop.

  The guarantee, and what keeps a *slow* helpdesk from getting a healthy worker killed: the
  main thread calls ``alive()`` between bounded steps only — between jobs and effects, and
  inside the helpdesk client (``connector.http``, its ``progress``) before every attempt,
  every ``WAIT_SLICE`` second of a backoff, ``Retry-After`` or request-budget wait, and
  between chunks of a download. The longest step without a ping is one attempt, at most
  connect + read timeout (a read that receives nothing for the read timeout fails), so
  ``run`` and ``check`` refuse (exit 78, one line naming ``ESCALATIONS_HTTP_READ_TIMEOUT``)
  timeouts whose sum is not under half of ``$WATCHDOG_USEC``
  (``preflight.ensure_fits_watchdog``). A call hung inside one read still stops the pings.
  Not bounded this way: a response trickling a byte at a time just inside the read timeout
  (each read succeeds), and the worker's own work between pings (store, PDF rendering).
- ``STATUS=`` one line (``systemctl status`` shows it), sent only when it changes.
- ``STOPPING=1`` as soon as SIGTERM arrives.

A send that fails (the socket has gone) is logged once at DEBUG and otherwise ignored: the
worker's job is the helpdesk, not the supervisor.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def _address(value: str) -> str | None:
    """The socket address of ``$NOTIFY_SOCKET``: a path, or ``@name`` for the abstract
    namespace (a leading NUL byte for the kernel)."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock and other forms systemd may use: not ours to speak


def watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """systemd's ``WatchdogSec=`` in seconds (``$WATCHDOG_USEC``), or ``None`` when there is
    no watchdog or it watches another process (``$WATCHDOG_PID``). Read by ``run`` and
    ``check`` to refuse HTTP timeouts that do not fit (``preflight.ensure_fits_watchdog``)."""
    usec, pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds between pings (half of ``$WATCHDOG_USEC``), or ``None`` when the watchdog is
    off or meant for another process (``$WATCHDOG_PID``)."""
    seconds = watchdog_seconds(environ)
    return None if seconds is None else seconds / 2


class Notifier:
    """The worker's side of sd_notify. Cheap to call often: ``alive`` and ``status`` send
    only when something is due or has changed."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        env = os.environ if environ is None else environ
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = _watchdog_interval(env) if self.address else None
        self._monotonic = monotonic
        self._sock: socket.socket | None = None
        self._last_ping: float | None = None
        self._last_status: str | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send one datagram of ``NAME=value`` lines; ``False`` when not under systemd or
        the send failed."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode("utf-8"), self.address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.debug("systemd.notify_failed socket=%s error=%s", self.address, exc)
            return False
        return True

    def ready(self, status: str) -> None:
        self._last_status = status
        self.send("READY=1", f"STATUS={status}")
        self.alive(force=True)

    def alive(self, *, force: bool = False) -> None:
        """A watchdog ping, if one is due (or ``force``)."""
        if self.watchdog_interval is None:
            return
        now = self._monotonic()
        if force or self._last_ping is None or now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def status(self, line: str) -> None:
        if line != self._last_status:
            self._last_status = line
            self.send(f"STATUS={line}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
