"""Zammad's webhook, as a wake-up call for the poll (``escalations run`` with
``ESCALATIONS_WEBHOOK_LISTEN`` or ``--webhook``; docs/webhook.md).

A ``ThreadingHTTPServer`` in a daemon thread answers ``POST`` on exactly the configured path
and nothing else. Each call is checked in this order, and the first failure is the answer::

    not the path                          404  not_found
    the path, but not POST                405  method_not_allowed (Allow: POST)
    no Content-Length (or chunked)        411  no_length
    Content-Length not a number           400  bad_length
    Content-Length over the cap           413  too_large      the body is never read
    X-Hub-Signature missing               401  no_signature
    X-Hub-Signature wrong                 401  bad_signature  HMAC-SHA1 of the raw body
    X-Zammad-Delivery missing             400  no_delivery
    X-Zammad-Delivery not a short token   400  bad_delivery
    the body is not JSON                  400  not_json
    a delivery id already accepted        409  replayed
    otherwise                             200  {"ok": true}, then the worker's wake event is set

The call **only wakes the poll**. Its body is neither trusted nor needed (what changed is read
from the helpdesk, with the worker's token, as on every tick), so nothing in it can make the
worker write anything: a forged call that got through would at worst cost one early poll,
and a lost one costs the wait until the next tick.

Why the delivery ids live in memory only: Zammad gives each delivery a unique
``X-Zammad-Delivery``; the last ``DELIVERIES_REMEMBERED`` accepted ones are kept to refuse a
replay. A replay that slips past (after a restart, or after 1000 newer deliveries) can at
worst wake one poll, which is safe at any time, so a durable record would protect nothing.
Only an accepted delivery is remembered, so Zammad's own retry after a refusal is judged
afresh; a retry after a 200 that Zammad never saw gets 409, harmless, as the first one woke
the poll.

Each refusal is logged at WARNING once per (reason, remote address) and
``REFUSAL_LOG_SECONDS``, as ``webhook.refused reason=bad_signature status=401 remote=…``, with
``suppressed=N`` counting the calls of that pair not logged since (behind a reverse proxy
every call comes from one address: a secret rotated in Zammad only keeps showing up); the last
``REFUSALS_REMEMBERED`` pairs are remembered. A good delivery is logged at DEBUG. The secret, the
signature and the body are never logged.

A request gets ``REQUEST_SECONDS`` in all, headers and body, so a slow client cannot hold a
thread: every read of the socket waits at most what is left of that budget.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import ipaddress
import json
import logging
import socket
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from connector.redaction import SECRETS
from escalations.errors import ConfigError
from escalations.settings import ENV_PREFIX, WEBHOOK_CREDENTIAL_NAME, Settings

log = logging.getLogger(__name__)

DELIVERIES_REMEMBERED = 1000
"""Accepted delivery ids kept to refuse a replay (see the module docstring: memory is enough)."""
REFUSALS_REMEMBERED = 1000
REFUSAL_LOG_SECONDS = 600.0
"""A refusal of the same reason from the same address is logged again after this long."""
"""(reason, remote) pairs already logged, so a refusal is logged once each."""
REQUEST_SECONDS = 10.0
"""The whole time a client has to send one request (headers and body)."""
DELIVERY_ID_MAX = 128
"""Zammad's delivery id is an ActiveJob id (a UUID, 36 characters)."""
SIGNATURE_HEADER = "X-Hub-Signature"
DELIVERY_HEADER = "X-Zammad-Delivery"
TRIGGER_HEADER = "X-Zammad-Trigger"


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` Zammad sends: ``sha1=`` and the lowercase hex HMAC-SHA1 of the
    raw body keyed with the webhook's signature token (``UserAgent.set_signature``:
    ``OpenSSL::HMAC.hexdigest('sha1', token, request.body)``)."""
    return "sha1=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha1).hexdigest()


def signature_matches(secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is ``body``'s signature, compared in constant time."""
    given = header.strip().lower().encode("latin-1", "replace")
    return hmac.compare_digest(signature(secret, body).encode("ascii"), given)


class _Refused(Exception):  # noqa: N818 - an answer, not an error
    def __init__(self, status: int, reason: str, *, allow: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.allow = allow


class _Budget(io.RawIOBase):
    """The socket as a raw stream whose every read waits at most what is left of the
    request's time (``REQUEST_SECONDS``); past it, reads raise ``TimeoutError``."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    server_version = "helpdesk-escalations"
    sys_version = ""
    timeout = REQUEST_SECONDS

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain file the base class made; the budgeted one replaces it
        self.rfile = io.BufferedReader(_Budget(self.connection, REQUEST_SECONDS))

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        log.debug("webhook.http %s remote=%s", format % args, self._remote)

    @property
    def _remote(self) -> str:
        return str(self.client_address[0])

    @property
    def _on_path(self) -> bool:
        return self.path.split("?", 1)[0] == self.server.hook.path

    # -- answers ----------------------------------------------------------------------------

    def do_POST(self) -> None:
        hook = self.server.hook
        try:
            delivery = self._accept()
        except _Refused as refused:
            self._refuse(refused)
            return
        except OSError:  # TimeoutError included: the client is gone or too slow to answer
            self.close_connection = True
            hook.refused("timeout", 0, self._remote)
            return
        self._answer(200, {"ok": True})
        hook.delivered(delivery, self.headers.get(TRIGGER_HEADER, ""), self._remote)

    def _not_post(self) -> None:
        if self._on_path:
            self._refuse(_Refused(405, "method_not_allowed", allow="POST"))
        else:
            self._refuse(_Refused(404, "not_found"))

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_post

    def _accept(self) -> str:
        """The delivery id of a call that passes every check (the table in the module
        docstring), or ``_Refused``."""
        hook = self.server.hook
        if not self._on_path:
            self._discard_body()
            raise _Refused(404, "not_found")
        length = self._content_length()
        if length > hook.max_body_bytes:
            raise _Refused(413, "too_large")
        body = self._read(length)
        given = self.headers.get(SIGNATURE_HEADER)
        if not given:
            raise _Refused(401, "no_signature")
        if not signature_matches(hook.secret, body, given):
            raise _Refused(401, "bad_signature")
        delivery = (self.headers.get(DELIVERY_HEADER) or "").strip()
        if not delivery:
            raise _Refused(400, "no_delivery")
        if len(delivery) > DELIVERY_ID_MAX or not all(
            ch.isascii() and ch.isprintable() and not ch.isspace() for ch in delivery
        ):
            raise _Refused(400, "bad_delivery")
        try:
            json.loads(body)
        except (ValueError, RecursionError):
            raise _Refused(400, "not_json") from None
        if not hook.remember(delivery):
            raise _Refused(409, "replayed")
        return delivery

    def _content_length(self) -> int:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise _Refused(411, "no_length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise _Refused(411, "no_length")
        if not raw.strip().isdigit():
            raise _Refused(400, "bad_length")
        return int(raw.strip())

    def _read(self, length: int) -> bytes:
        """Exactly ``length`` bytes (never more; the caller has checked the cap)."""
        chunks: list[bytes] = []
        left = length
        while left > 0:
            chunk = self.rfile.read1(min(left, 65536))
            if not chunk:
                raise ConnectionError("the client closed before sending the whole body")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _discard_body(self) -> None:
        """Read and drop a body within the cap, so the client gets the answer rather than a
        reset from unread data; a larger one is left unread (the connection closes)."""
        raw = (self.headers.get("Content-Length") or "").strip()
        if raw.isdigit() and int(raw) <= self.server.hook.max_body_bytes:
            self._read(int(raw))

    def _refuse(self, refused: _Refused) -> None:
        self.server.hook.refused(refused.reason, refused.status, self._remote)
        headers = {"Allow": refused.allow} if refused.allow else {}
        self._answer(refused.status, {"ok": False, "error": refused.reason}, headers)

    def _answer(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.close_connection = True
        self.connection.settimeout(REQUEST_SECONDS)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a stop does not wait for a slow client (its budget ends it)
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], hook: WebhookServer) -> None:
        self.hook = hook
        if ipaddress.ip_address(address[0]).version == 6:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class WebhookServer:
    """The listener: ``start()`` serves in a daemon thread, ``close()`` stops it (also as a
    context manager). ``wake`` is set after each accepted delivery has been answered.

    Raises:
        OSError: the address cannot be bound (``from_settings`` turns it into a
            ``ConfigError``).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        secret: str,
        wake: threading.Event,
        path: str = "/zammad/webhook",
        max_body_bytes: int = 1_048_576,
    ) -> None:
        self.secret = secret
        self.wake = wake
        self.path = path
        self.max_body_bytes = max_body_bytes
        self._deliveries: OrderedDict[str, None] = OrderedDict()
        self._refusals: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        """(reason, remote) → [when last logged (monotonic), calls not logged since]."""
        self.monotonic = time.monotonic
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        SECRETS.add(secret)
        self._httpd = _HttpServer((host, port), self)

    @classmethod
    def from_settings(
        cls, settings: Settings, wake: threading.Event, *, source: str | None = None
    ) -> WebhookServer:
        """The listener ``settings`` ask for (``webhook_listen`` set; see ``require_secret``).
        ``source`` names where the address came from in errors (default: the setting).

        Raises:
            ConfigError: no secret, or the address cannot be listened on.
        """
        source = source or f"{ENV_PREFIX}WEBHOOK_LISTEN"
        secret = _secret(settings, source)
        host, _, port = settings.webhook_listen.rpartition(":")
        host = host.strip("[]")
        try:
            return cls(
                host,
                int(port),
                secret=secret,
                wake=wake,
                path=settings.webhook_path,
                max_body_bytes=settings.webhook_max_body_bytes,
            )
        except OSError as exc:
            raise ConfigError(
                f"{source}: cannot listen on {settings.webhook_listen}: {exc.strerror or exc}"
            ) from None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return (host.decode() if isinstance(host, bytes) else str(host)), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}{self.path}"

    def start(self) -> WebhookServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="webhook",
            daemon=True,
        )
        self._thread.start()
        log.info("webhook.listening url=%s max_body_bytes=%s", self.url, self.max_body_bytes)
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> WebhookServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- called by the handler threads ------------------------------------------------------

    def remember(self, delivery: str) -> bool:
        """Record an accepted delivery id; ``False`` if it was already accepted."""
        with self._lock:
            if delivery in self._deliveries:
                return False
            self._deliveries[delivery] = None
            while len(self._deliveries) > DELIVERIES_REMEMBERED:
                self._deliveries.popitem(last=False)
            return True

    def delivered(self, delivery: str, trigger: str, remote: str) -> None:
        trigger = "".join(ch for ch in trigger[:100] if ch.isprintable())
        log.debug("webhook.delivery id=%s trigger=%r remote=%s", delivery, trigger, remote)
        self.wake.set()

    def refused(self, reason: str, status: int, remote: str) -> None:
        """Log a refusal, once per (reason, remote address) and ``REFUSAL_LOG_SECONDS``."""
        key = (reason, remote)
        now = self.monotonic()
        with self._lock:
            seen = self._refusals.get(key)
            if seen is not None and now - seen[0] < REFUSAL_LOG_SECONDS:
                seen[1] += 1
                return
            suppressed = int(seen[1]) if seen is not None else 0
            self._refusals[key] = [now, 0]
            self._refusals.move_to_end(key)
            while len(self._refusals) > REFUSALS_REMEMBERED:
                self._refusals.popitem(last=False)
        more = f" suppressed={suppressed}" if suppressed else ""
        log.warning("webhook.refused reason=%s status=%s remote=%s%s", reason, status, remote, more)


def require_secret(settings: Settings, *, source: str | None = None) -> None:
    """A listen address needs the webhook's signature token: unsigned calls are all refused,
    so a listener without one would only ever answer 401.

    Raises:
        ConfigError: ``webhook_listen`` is set and ``webhook_secret`` is not.
    """
    if settings.webhook_listen:
        _secret(settings, source or f"{ENV_PREFIX}WEBHOOK_LISTEN")


def _secret(settings: Settings, source: str) -> str:
    if settings.webhook_secret is None:
        raise ConfigError(
            f"{ENV_PREFIX}WEBHOOK_SECRET: missing ({source} is set): set it, or the "
            f"{WEBHOOK_CREDENTIAL_NAME} credential, to the webhook's signature token in Zammad"
        )
    return settings.webhook_secret.get_secret_value()
