"""The one HTTP policy every adapter uses: session factory, timeouts, retries, request budget,
redirect rules and the mapping of responses to the exception tree.

Exceptions raised here (defined in ``connector/errors.py``)::

    HelpdeskError
    ├─ TransientError          could not connect, read timeout or truncated body on an
    │  │                       idempotent call, 502/503/504 (retried), other 5xx on an
    │  │                       idempotent call (not retried)
    │  ├─ RateLimited          429 on any verb (retried); .retry_after: float
    │  └─ Maintenance          403 "Maintenance mode enabled!" (not retried within a call)
    ├─ AmbiguousWrite          POST (or a PUT the caller declares not idempotent): read
    │                          timeout, reset after send, truncated or unreadable 2xx
    │                          body, any 5xx → never retried, reconcile by marker
    ├─ AuthError               never retried
    │  ├─ Unauthorized         401
    │  └─ Forbidden            403 (but maintenance mode)
    ├─ NotFound                404
    ├─ Conflict                409
    ├─ Rejected                400/422 and every other 4xx → permanent for this payload
    ├─ RedirectError           any 3xx, on any verb (never followed): to the same host the
    │                          base URL is not the final address, a configuration error
    └─ TooLarge                a download grew past its byte cap

Retry policy (tenacity, one ``Retrying`` per call):

* GET, HEAD, PUT, DELETE (and POSTs the caller declares idempotent, e.g. Zammad's
  ``tags/add``) are retried on connect errors, read timeouts, truncated bodies, 429, 502, 503
  and 504.
* A PUT the caller declares not idempotent (``idempotent=False``: Zammad's ticket update
  carrying an ``article``, which a repeat would create twice) is treated like a POST.
* Any other POST is retried **only** when the request provably never left this machine: a
  refused connection, DNS failure, connect timeout or certificate failure (urllib3's
  ``NewConnectionError``/``NameResolutionError``/``ConnectTimeoutError``). requests raises the
  same ``ConnectionError`` for a refused connection and for a reset after the request was sent,
  so the urllib3 cause decides. A reset after send (``ProtocolError``/``RemoteDisconnected``),
  a read timeout or a 5xx raises ``AmbiguousWrite``.
* **429 on POST is retried.** A 429 comes from Zammad's rack-attack middleware or from a proxy
  in front of it; both answer before the request reaches the application, so nothing was
  applied (reference §2.4: Zammad itself has no per-user API limit).
* The wait is ``max(Retry-After, backoff)``: ``Retry-After`` in delta-seconds or HTTP-date
  form (relative to the injected clock) clamped to ``[0, retry_after_max]``; backoff is
  exponential with jitter, capped. Sleeping uses the clock, so ``FakeClock`` records it.
* A call never sleeps more than ``retry_budget`` seconds in total: a longer ``Retry-After``
  gives up at once with ``RateLimited(retry_after=…)`` so the worker loop (watchdog!) decides
  when to come back instead of blocking inside one HTTP call.
* **Stopping.** A client given a stop signal (``stop=``, a ``threading.Event``-like object;
  or a clock that carries one, ``StoppingClock``) waits on it instead of sleeping: a backoff,
  a ``Retry-After`` or a request-budget wait ends the moment the worker is told to stop, and
  no further attempt is made (the call raises the last attempt's error). The attempt already
  on the wire is not interrupted here: it ends within its connect + read timeout (the
  worker's SIGTERM grace covers it).
* **Liveness.** ``progress`` (the watchdog ping) is called on the caller's thread between
  bounded steps only: before each attempt, between slices of at most ``WAIT_SLICE`` seconds
  of any wait, and between chunks of a streamed download. The longest time without a call
  is then one step: connect + read timeout for an attempt (the application refuses timeouts
  that do not fit in half the watchdog interval), ``WAIT_SLICE`` for a wait. A call hung
  inside a read makes no progress calls, so the pings stop, as they should.

Every attempt takes a token from a client-side bucket (``requests_per_minute``, and at most
``burst`` requests in any one-second window) and carries ``timeout=(connect, read)``.
A thread doing background reads (the nightly report) runs under a ``ThreadShare``: its
requests, whatever client sends them, first take a token of a bucket of their own at a share
of the client's rate (so the worker's loop keeps the rest of the budget), are counted when
answered, make no ``progress`` call (the watchdog's pings belong to the worker's loop), and
are not made once the share's stop is set (``Interrupted``).
Redirects are never followed (``allow_redirects=False`` on every verb): a write must not be
re-sent somewhere else, requests would forward custom auth headers to another host, and a
read that only works through a redirect costs two requests per call for as long as the
configured URL stays wrong. ``http://`` is refused unless the host is loopback. The token is
registered with ``connector.redaction.SECRETS`` when the client is built; exceptions and log
lines never carry header values or bodies.

This module imports nothing of the project but the kernel (``connector.clock``,
``connector.redaction``): settings are turned into an ``HttpPolicy`` by the application layer.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.client
import ipaddress
import json as jsonlib
import logging
import random
import re
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import requests.adapters
import requests.auth
import tenacity
import urllib3.exceptions

from connector.clock import Clock, SystemClock
from connector.errors import (
    BODY_EXCERPT_LIMIT,
    AmbiguousWrite,
    Conflict,
    Forbidden,
    HelpdeskError,
    Maintenance,
    NotFound,
    RateLimited,
    RedirectError,
    Rejected,
    SetupError,
    TooLarge,
    TransientError,
    Unauthorized,
)
from connector.redaction import SECRETS

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_AFTER_MAX = 300.0
"""Protocol cap on a server-sent ``Retry-After`` (seconds); anything longer is clamped."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({502, 503, 504})
MESSAGE_LIMIT = 300
_DOWNLOAD_CHUNK = 64 * 1024
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_DELTA_SECONDS_RE = re.compile(r"\s*[0-9]+\s*")
MAINTENANCE_RE = re.compile(r"maintenance mode", re.IGNORECASE)
"""Zammad's 403 body in maintenance mode: "Maintenance mode enabled!" (reference §2.1)."""
ONE_SECOND = timedelta(seconds=1)
"""The resolution of an HTTP ``Date`` header."""
WAIT_SLICE = 0.5
"""The longest stretch of a wait (backoff, ``Retry-After``, request budget) between two
``progress`` calls, when the client has a ``progress`` callable. The watchdog pinger sends at
most one ping per interval (half of ``WatchdogSec=``), so the longest gap between two pings
is that interval plus the longest step without a ``progress`` call: a slice, or an attempt
(connect + read timeout, which the application keeps under the interval)."""


class StopSignal(Protocol):
    """What the client needs of a ``threading.Event`` to stop waiting and retrying."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@runtime_checkable
class StoppingClock(Protocol):
    """A clock that carries the worker's stop signal (``escalations run`` passes one): its
    ``sleep`` returns as soon as ``stop`` is set, and a client built with it stops retrying
    then."""

    stop: StopSignal

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


# Errors raised while the body is read: the response began but did not arrive whole.
_TRUNCATION_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    http.client.IncompleteRead,
    urllib3.exceptions.IncompleteRead,
)
# Everything the transport can raise for a network-level failure. Programming errors
# (InvalidURL, InvalidJSONError, …) are deliberately not listed and propagate unchanged.
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    *_TRUNCATION_ERRORS,
    http.client.HTTPException,
    urllib3.exceptions.HTTPError,
    ConnectionError,
)
# urllib3 causes that prove the request never left this machine.
_BEFORE_SEND_CAUSES: tuple[type[BaseException], ...] = (
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.NameResolutionError,
    urllib3.exceptions.ConnectTimeoutError,
    ssl.SSLCertVerificationError,
    ssl.CertificateError,
)


class UnsafeURLError(SetupError):
    """The helpdesk URL is not acceptable (``http://`` to a non-loopback host, credentials in
    the URL, no host). A configuration problem: the CLI exits 78."""


# -- policy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts, retry and rate settings for one client. The application layer builds it from
    the settings; tests construct it directly."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    requests_per_minute: int = 60
    burst: int = 10
    """The most requests any one-second window may hold (as long as ``requests_per_minute``
    allows fewer than that per second); see ``TokenBucket``."""
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_max: float = RETRY_AFTER_MAX
    retry_budget: float = 30.0
    ca_bundle: Path | None = None
    proxy: str | None = None
    """An HTTP(S) proxy for ``https://`` requests (``check_proxy_url``); ``None``: direct."""

    def __post_init__(self) -> None:
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.requests_per_minute < 1 or self.burst < 1 or self.max_attempts < 1:
            raise ValueError("requests_per_minute, burst and max_attempts must be at least 1")
        if self.ca_bundle is not None and not Path(self.ca_bundle).is_file():
            raise SetupError(f"CA bundle {self.ca_bundle} is not a file")
        if self.proxy is not None:
            check_proxy_url(self.proxy)

    @property
    def timeout(self) -> tuple[float, float]:
        """The ``(connect, read)`` tuple passed to every request."""
        return (self.connect_timeout, self.read_timeout)

    @property
    def verify(self) -> str | bool:
        """``requests``' ``verify``: the CA bundle path, else ``True``. Never ``False``."""
        return str(self.ca_bundle) if self.ca_bundle is not None else True


def build_session(policy: HttpPolicy) -> requests.Session:
    """A ``requests.Session`` for one adapter: TLS verification on (or the configured CA
    bundle), no transport-level retries (tenacity owns retrying), JSON ``Accept``.

    ``trust_env`` is off: requests would otherwise read, on every request, the proxy
    variables (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``), ``REQUESTS_CA_BUNDLE`` and
    ``CURL_CA_BUNDLE`` (which replace the CA bundle) and ``~/.netrc``. The only proxy is the
    policy's (``ESCALATIONS_HTTPS_PROXY``), for ``https://`` URLs."""
    session = requests.Session()
    session.trust_env = False
    if policy.proxy is not None:
        session.proxies = {"https": policy.proxy}
    session.verify = policy.verify
    session.headers["Accept"] = "application/json"
    session.headers["User-Agent"] = "helpdesk-escalations"
    adapter = requests.adapters.HTTPAdapter(max_retries=0, pool_connections=2, pool_maxsize=4)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# -- URL rules ------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str) -> str:
    """Validate a helpdesk base URL and return it without a trailing slash.

    Raises:
        UnsafeURLError: not ``https://`` (``http://`` is allowed for loopback hosts only),
            credentials embedded in the URL, a query or fragment, or no host.
    """
    parts = urlsplit(base_url.strip())
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise UnsafeURLError("helpdesk URL must be https://HOST[/PATH]")
    if parts.scheme == "http" and not _is_loopback(host):
        raise UnsafeURLError(
            f"refusing http:// to {host}: plain HTTP is only allowed for a loopback address"
        )
    if parts.username or parts.password:
        raise UnsafeURLError("helpdesk URL must not contain credentials")
    if parts.query or parts.fragment:
        raise UnsafeURLError("helpdesk URL must not contain a query or fragment")
    return base_url.strip().rstrip("/")


def check_proxy_url(proxy: str) -> str:
    """Validate a proxy URL: ``http://`` or ``https://`` with a host, nothing else.

    Raises:
        UnsafeURLError: another scheme, no host, credentials (they would be sent in a
            header and shown wherever the setting is), a path, query or fragment.
    """
    parts = urlsplit(proxy.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURLError("the proxy must be http://HOST:PORT (or https://)")
    if parts.username or parts.password:
        raise UnsafeURLError("the proxy URL must not contain credentials")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UnsafeURLError("the proxy URL must be only scheme, host and port")
    return proxy.strip()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), parts.port or default)


# -- Retry-After and backoff ----------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime, *, cap: float = RETRY_AFTER_MAX) -> float:
    """Seconds to wait from a ``Retry-After`` header, clamped to ``[0, cap]``.

    Accepts delta-seconds (``"7"``) and an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``,
    measured from ``now``). Anything unparseable counts as absent (0).
    """
    if not value:
        return 0.0
    if _DELTA_SECONDS_RE.fullmatch(value):
        seconds = float(int(value.strip()))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return 0.0
        if when.tzinfo is None:  # RFC 850/asctime forms parse naive; HTTP dates are GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), cap)


class _CallState:
    """What one call's attempts tell its wait/stop callables."""

    __slots__ = ("last_error", "retry_after", "status", "waits")

    def __init__(self) -> None:
        self.retry_after: str | None = None
        self.status: int | None = None
        self.waits: dict[int, float] = {}
        self.last_error: HelpdeskError | None = None


class RetryAfterWait:
    """tenacity ``wait=``: ``max(Retry-After, exponential backoff with jitter)``.

    Backoff for attempt *n* is drawn from ``[d/2, d]`` with ``d = min(cap, base·2^(n-1))``
    ("equal jitter": never zero, spreads concurrent clients). ``Retry-After`` is read from the
    last response, parsed relative to ``clock.now()`` and clamped to ``retry_after_max``.
    """

    def __init__(
        self, policy: HttpPolicy, clock: Clock, rng: random.Random, state: _CallState
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._rng = rng
        self._state = state

    def backoff(self, attempt: int) -> float:
        ceiling = min(self._policy.backoff_cap, self._policy.backoff_base * 2 ** (attempt - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    def compute(self, retry_state: tenacity.RetryCallState) -> float:
        attempt = retry_state.attempt_number
        if attempt not in self._state.waits:
            retry_after = parse_retry_after(
                self._state.retry_after, self._clock.now(), cap=self._policy.retry_after_max
            )
            self._state.waits[attempt] = max(retry_after, self.backoff(attempt))
        return self._state.waits[attempt]

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return self.compute(retry_state)


class _StopPolicy:
    """tenacity ``stop=``: after ``max_attempts``, when the next wait would take the call's
    total sleeping past ``retry_budget``, or once the worker is stopping."""

    def __init__(
        self,
        policy: HttpPolicy,
        wait: RetryAfterWait,
        state: _CallState,
        *,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._policy = policy
        self._wait = wait
        self._state = state
        self._stopping = stopping

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        if retry_state.attempt_number >= self._policy.max_attempts or self._stopping():
            return True
        slept = sum(w for n, w in self._state.waits.items() if n < retry_state.attempt_number)
        return slept + self._wait.compute(retry_state) > self._policy.retry_budget


# -- request budget -------------------------------------------------------------------------


class TokenBucket:
    """A client-side request budget: ``rate_per_minute`` tokens a minute, and at most ``burst``
    requests in any one-second window. ``acquire`` sleeps on the injected clock until a token
    is free.

    A bucket that banks *c* tokens and refills *r* a second lets through at most ``c + r``
    requests in a closed one-second window: the bank, then what trickles in meanwhile. So
    the bank is ``burst - r`` (at least one token), not ``burst``: with the defaults (60 a
    minute, burst 10) nine are banked and a second never sees an eleventh request. When the
    rate alone exceeds ``burst`` a second, the rate wins and one token is banked.
    """

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        clock: Clock,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._sleep = sleep or clock.sleep
        self._rate = rate_per_minute / 60.0
        self._capacity = max(1.0, float(burst) - self._rate)
        self._tokens = self._capacity
        self._clock = clock
        self._stamp = clock.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def acquire(self) -> float:
        """Take one token; returns how long it waited."""
        waited = 0.0
        with self._lock:
            self._refill()
            if self._tokens < 1.0:
                waited = (1.0 - self._tokens) / self._rate
                log.debug("http.throttle wait=%.2f", waited)
                self._sleep(waited)
                self._refill()
                # the sleep earned the missing part; a clock that rounds (to microseconds, or a
                # float sum) may show a hair less, and waiting for that hair never ends
                self._tokens = max(self._tokens, 1.0)
            self._tokens -= 1.0
        return waited


class Interrupted(Exception):  # noqa: N818 - it is what happened, not a fault
    """A request not made: the ``ThreadShare`` of its thread was told to stop."""


_THREAD = threading.local()


class ThreadShare:
    """The requests one thread makes (a background job's reads), whatever ``HttpClient``
    sends them: at most ``share`` of each client's request budget (a bucket of their own,
    taken before the client's), ``answered`` counts the answers (what a ``requests`` response
    hook on the session would count), no ``progress`` call is made on the thread, and once
    ``stopping()`` is true no further request is made (``Interrupted``).

    Args:
        share: the fraction of each client's ``requests_per_minute`` (and burst) this
            thread may use; 1.0: no bucket of its own.
        stopping: asked before each request and during the share's waits.
        progress: keep the client's ``progress`` calls (a share on the worker's own thread).
        watch: called before each request the share lets through, with ``answered`` so
            far (a long reading says it is still under way: ``jobs.reconcile``).
    """

    def __init__(
        self,
        *,
        share: float = 1.0,
        stopping: Callable[[], bool] = lambda: False,
        progress: bool = False,
        watch: Callable[[int], None] | None = None,
    ) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"a share of the request budget is in (0, 1]: {share}")
        self.share = share
        self.stopping = stopping
        self.progress = progress
        self.watch = watch
        self.answered = 0
        self._buckets: dict[int, TokenBucket] = {}

    @contextlib.contextmanager
    def on_this_thread(self) -> Iterator[ThreadShare]:
        """Apply the share to the requests this thread makes inside the block."""
        previous = getattr(_THREAD, "share", None)
        _THREAD.share = self
        try:
            yield self
        finally:
            _THREAD.share = previous

    def before(self, policy: HttpPolicy, clock: Clock) -> None:
        """Before a request: refuse once stopping, else wait for a token of the share."""
        if self.stopping():
            raise Interrupted("stopping: the request was not made")
        if self.share >= 1.0:
            self._watched()
            return
        bucket = self._buckets.get(id(policy))
        if bucket is None:
            # a fraction of a token a minute is fine; rounded up to one, a share of a budget
            # of one a minute was the whole of it
            rate = policy.requests_per_minute * self.share
            burst = max(1, int(policy.burst * self.share))
            bucket = self._buckets[id(policy)] = TokenBucket(
                rate, burst, clock, sleep=lambda seconds: self._sleep(clock, seconds)
            )
        bucket.acquire()
        if self.stopping():
            raise Interrupted("stopping: the request was not made")
        self._watched()

    def _watched(self) -> None:
        if self.watch is not None:
            self.watch(self.answered)

    def _sleep(self, clock: Clock, seconds: float) -> None:
        deadline = clock.monotonic() + seconds
        while not self.stopping():
            left = deadline - clock.monotonic()
            if left <= 0:
                return
            clock.sleep(min(left, WAIT_SLICE))


def current_share() -> ThreadShare | None:
    """The ``ThreadShare`` of the calling thread, if any."""
    share: ThreadShare | None = getattr(_THREAD, "share", None)
    return share


# -- error mapping --------------------------------------------------------------------------


def _path_of(resp: requests.Response) -> str:
    url = resp.url or (resp.request.url if resp.request is not None else "") or ""
    return urlsplit(url).path


def _request_id(resp: requests.Response) -> str | None:
    value = resp.headers.get("X-Request-Id")
    if not value or not _REQUEST_ID_RE.fullmatch(value.strip()):
        return None
    redacted = SECRETS.redact(value.strip())
    return None if redacted != value.strip() else redacted


def _body_text(resp: requests.Response) -> str:
    try:
        raw = resp.content or b""
    except (requests.RequestException, http.client.HTTPException, urllib3.exceptions.HTTPError):
        return ""
    return raw[: 64 * 1024].decode(resp.encoding or "utf-8", errors="replace")


def _server_message(text: str) -> str | None:
    try:
        data = jsonlib.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict):
        for key in ("error_human", "error", "message"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def raise_for_response(
    resp: requests.Response,
    *,
    clock: Clock | None = None,
    retry_after_max: float = RETRY_AFTER_MAX,
    idempotent: bool | None = None,
) -> None:
    """Raise the ``HelpdeskError`` for a non-2xx response; return ``None`` for a 2xx.

    This is the only place HTTP statuses become exceptions. The exception carries the
    status, method, path (never the query string), the ``X-Request-Id`` value and a
    redacted body excerpt of at most 1 KiB; never a header value.

    Args:
        resp: the response.
        clock: the clock an HTTP-date ``Retry-After`` is measured against.
        retry_after_max: clamp for ``RateLimited.retry_after``.
        idempotent: whether repeating the request is harmless; defaults by method. A 5xx on
            a non-idempotent request is ``AmbiguousWrite``.
    """
    status = resp.status_code
    if 200 <= status < 300:
        return
    method = (resp.request.method or "").upper() if resp.request is not None else ""
    if idempotent is None:
        idempotent = method in IDEMPOTENT_METHODS
    text = SECRETS.redact(_body_text(resp))
    server = _server_message(text)
    detail = f": {server[:MESSAGE_LIMIT]}" if server else ""
    kw: dict[str, Any] = {
        "status": status,
        "method": method or None,
        "path": _path_of(resp),
        "request_id": _request_id(resp),
        "body_excerpt": text[:BODY_EXCERPT_LIMIT] or None,
    }
    if 300 <= status < 400:
        raise RedirectError(f"HTTP {status} redirect refused", **kw)
    if status == 401:
        raise Unauthorized(f"HTTP 401 not authorised{detail}", **kw)
    if status == 403 and server is not None and MAINTENANCE_RE.search(server):
        raise Maintenance(f"HTTP 403 the helpdesk is in maintenance mode{detail}", **kw)
    if status == 403:
        raise Forbidden(f"HTTP 403 forbidden{detail}", **kw)
    if status == 404:
        raise NotFound(f"HTTP 404 not found{detail}", **kw)
    if status == 409:
        raise Conflict(f"HTTP 409 conflict{detail}", **kw)
    if status == 429:
        now = (clock or SystemClock()).now()
        retry_after = parse_retry_after(resp.headers.get("Retry-After"), now, cap=retry_after_max)
        raise RateLimited(f"HTTP 429 rate limited{detail}", retry_after=retry_after, **kw)
    if 400 <= status < 500:
        raise Rejected(f"HTTP {status} rejected{detail}", **kw)
    if status >= 500 and not idempotent:
        raise AmbiguousWrite(
            f"HTTP {status} on a non-idempotent {method}: it may have been applied{detail}", **kw
        )
    if status >= 500:
        raise TransientError(f"HTTP {status} server error{detail}", **kw)
    raise Rejected(f"HTTP {status} unexpected status", **kw)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        for attr in ("reason", "__cause__", "__context__"):
            nested = getattr(current, attr, None)
            if isinstance(nested, BaseException):
                stack.append(nested)


def classify_transport_error(exc: BaseException) -> str:
    """Name the phase a transport error happened in.

    Returns one of ``connect`` (the request never left: refused, DNS, connect timeout,
    certificate), ``read_timeout``, ``truncated`` (body cut short) or ``reset`` (connection
    dropped after the request was sent; the default when unsure).
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect"
    causes = list(_causes(exc))
    if any(isinstance(c, _BEFORE_SEND_CAUSES) for c in causes):
        return "connect"
    if isinstance(exc, requests.exceptions.ReadTimeout) or any(
        isinstance(c, urllib3.exceptions.ReadTimeoutError) for c in causes
    ):
        return "read_timeout"
    if any(isinstance(c, _TRUNCATION_ERRORS) for c in causes):
        return "truncated"
    return "reset"


_REASON_TEXT = {
    "connect": "could not connect (the request was not sent)",
    "read_timeout": "read timed out",
    "truncated": "response body truncated",
    "reset": "connection dropped after the request was sent",
}


# -- the client -----------------------------------------------------------------------------


def _credential_parts(value: str) -> Iterator[str]:
    """The header value, its credential after the scheme, and the value of a ``key=value``
    credential: ``Token token=abc`` yields the whole value, ``token=abc`` and ``abc``."""
    yield value
    _, _, credential = value.strip().partition(" ")
    if credential:
        yield credential
        key, sep, rest = credential.partition("=")
        if sep and key.isalpha():
            yield rest


class _HeaderAuth(requests.auth.AuthBase):
    """Adds the auth headers at prepare time. Passing an explicit ``auth`` also stops requests
    from consulting ``~/.netrc``, which would overwrite ``Authorization``."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {sorted(self._headers)} values masked>"


class HttpClient:
    """A JSON HTTP client bound to one helpdesk base URL, applying ``HttpPolicy``.

    Args:
        base_url: ``https://host[/prefix]``; ``http://`` only for loopback hosts.
        auth_headers: headers that authenticate every request; their values are registered
            as secrets and never logged.
        policy: timeouts, retries, budget.
        clock: time source for back-off sleeps, ``Retry-After`` dates and the request budget.
        session: a session from ``build_session`` (tests mount fault adapters on it).
        rng: jitter source (tests pass a seeded one).
        progress: called on the caller's thread between bounded steps (before every
            attempt, between slices of a wait, between chunks of a download): the service's
            watchdog ping, so a worker busy with many requests stays "alive" while one stuck
            in a single call stops pinging.
        stop: the worker's stop signal: waits end when it is set, and no further attempt
            is made. Defaults to the clock's, when it is a ``StoppingClock``.

    Raises:
        UnsafeURLError: the URL is refused (see ``check_base_url``).
    """

    def __init__(
        self,
        base_url: str,
        auth_headers: Mapping[str, str],
        policy: HttpPolicy,
        clock: Clock,
        session: requests.Session | None = None,
        *,
        rng: random.Random | None = None,
        progress: Callable[[], None] | None = None,
        stop: StopSignal | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self._progress = progress
        # decided once: a runtime-checkable Protocol's isinstance is slow, and waits are hot
        self._clock_stops = isinstance(clock, StoppingClock)
        if stop is None and isinstance(clock, StoppingClock):
            stop = clock.stop
        self._stop = stop
        self.policy = policy
        self._origin = _origin(self.base_url)
        self._clock = clock
        for value in auth_headers.values():
            for secret in _credential_parts(value):
                SECRETS.add(secret)
        self._auth = _HeaderAuth(auth_headers)
        self._session = session if session is not None else build_session(policy)
        self._bucket = TokenBucket(
            policy.requests_per_minute, policy.burst, clock, sleep=self._wait
        )
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._auth_failed = False
        self._forbidden: set[str] = set()
        self._server_offset: timedelta | None = None

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r})"

    def expect_forbidden(self, path: str) -> None:
        """A 403 on ``path`` is an answer the caller expects and handles (a probe of an
        endpoint the token may lack): no ``http.forbidden`` WARNING for it."""
        self._forbidden.add(path)

    @property
    def server_offset(self) -> timedelta | None:
        """How far the helpdesk's clock is ahead of this machine's (negative: behind), from
        the ``Date`` header of its latest answer; ``None`` before any answer with one. The
        header counts whole seconds, so an offset within one second counts as none."""
        return self._server_offset

    def _note_server_time(self, value: str | None) -> None:
        if not value:
            return
        try:
            stamped = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return  # an unreadable Date says nothing about the helpdesk's clock
        if stamped.tzinfo is None:
            return  # RFC 9110 dates are GMT; one without a zone cannot be placed
        # the header truncates to the second, so the helpdesk's time lies in [Date, Date+1s)
        offset = stamped - self._clock.now()
        self._server_offset = timedelta(0) if -ONE_SECOND < offset <= timedelta(0) else offset

    # -- public API -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """Send one logical request under the policy and return the 2xx response.

        Args:
            method: HTTP verb.
            path: absolute path below the base URL (``/api/v1/...``), no query string.
            params: query parameters (never logged).
            json: JSON body.
            data: a raw body instead (its Content-Type in ``headers``).
            headers: extra headers (values never logged).
            stream: leave the body unread (the caller must close the response).
            idempotent: override the per-verb rule, for a POST the server treats as
                idempotent; ``None`` decides by method.

        Raises:
            HelpdeskError: see the module docstring for which subclass when.
        """

        def keep(resp: requests.Response) -> requests.Response:
            if not stream:
                _ = resp.content  # read inside the attempt: a truncated body is retried
            return resp

        return self._call(
            method, path, params=params, json=json, data=data, headers=headers, stream=stream,
            idempotent=idempotent, consume=keep, close=False,
        )  # fmt: skip

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """GET and decode JSON."""
        return self._json_call("GET", path, params=params)

    def post_json(
        self,
        path: str,
        json: Any,
        *,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """POST a JSON body and decode the JSON answer."""
        return self._json_call("POST", path, json=json, headers=headers, idempotent=idempotent)

    def put_json(
        self,
        path: str,
        json: Any,
        *,
        params: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """PUT a JSON body and decode the JSON answer. ``idempotent=False`` for a PUT whose
        repeat is not harmless (it creates something): then it is retried only when it
        provably never left this machine, and an unknown outcome raises ``AmbiguousWrite``."""
        return self._json_call("PUT", path, json=json, params=params, idempotent=idempotent)

    def delete_json(self, path: str, json: Any = None) -> Any:
        """DELETE (optionally with a JSON body) and decode the JSON answer, if any."""
        return self._json_call("DELETE", path, json=json)

    def download(self, path: str, *, max_bytes: int) -> bytes:
        """GET a binary body, streamed, counting bytes as they arrive.

        Raises:
            TooLarge: the declared ``Content-Length`` or the bytes read exceed ``max_bytes``
                (``Content-Length`` can lie, so both are checked).
        """

        def consume(resp: requests.Response) -> bytes:
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise TooLarge(
                    f"declared size {declared} bytes exceeds the cap of {max_bytes}",
                    size_seen=int(declared), status=resp.status_code, method="GET", path=path,
                )  # fmt: skip
            buffer = bytearray()
            for chunk in resp.iter_content(_DOWNLOAD_CHUNK):
                self._ping()  # bytes are arriving: each read is bounded by the read timeout
                buffer += chunk
                if len(buffer) > max_bytes:
                    raise TooLarge(
                        f"download exceeds the cap of {max_bytes} bytes",
                        size_seen=len(buffer), status=resp.status_code, method="GET", path=path,
                    )  # fmt: skip
            return bytes(buffer)

        return self._call("GET", path, stream=True, consume=consume, close=True)

    def digest(self, path: str) -> tuple[int, str]:
        """GET a binary body, streamed, and return its size and sha256 without keeping it."""

        def consume(resp: requests.Response) -> tuple[int, str]:
            digest = hashlib.sha256()
            size = 0
            for chunk in resp.iter_content(_DOWNLOAD_CHUNK):
                self._ping()
                digest.update(chunk)
                size += len(chunk)
            return size, digest.hexdigest()

        result: tuple[int, str] = self._call("GET", path, stream=True, consume=consume, close=True)
        return result

    # -- internals --------------------------------------------------------------------------

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _wait(self, seconds: float) -> None:
        """Wait ``seconds`` (a backoff, a ``Retry-After``, the request budget): on the stop
        signal when there is one, so a stop ends it at once; in slices of ``WAIT_SLICE``
        with a ``progress`` call after each when there is a ``progress``."""
        if self._progress is None and self._stop is None:
            self._clock.sleep(seconds)
            return
        deadline = self._clock.monotonic() + seconds
        while not self._stopping():
            self._ping()
            left = deadline - self._clock.monotonic()
            if left <= 0:
                return
            step = min(left, WAIT_SLICE) if self._progress is not None else left
            if self._stop is not None and not self._clock_stops:
                self._stop.wait(step)
            else:
                self._clock.sleep(step)  # a StoppingClock's sleep waits on the stop itself

    def _ping(self) -> None:
        if self._progress is not None:
            share = current_share()
            if share is None or share.progress:  # not a background thread's: it would hide
                self._progress()  # a stuck worker loop from the watchdog

    def _json_call(self, method: str, path: str, **kw: Any) -> Any:
        idempotent = kw.get("idempotent")
        retry_safe = idempotent if idempotent is not None else method in IDEMPOTENT_METHODS

        def decode(resp: requests.Response) -> Any:
            raw = resp.content
            if not raw.strip():
                return None
            try:
                return jsonlib.loads(raw)
            except ValueError:
                where: dict[str, Any] = {"status": resp.status_code, "method": method, "path": path}
                if not retry_safe:
                    raise AmbiguousWrite(
                        "the response to a write was not JSON; it may have been applied", **where
                    ) from None
                raise TransientError("the response was not JSON", **where) from None

        return self._call(method, path, consume=decode, close=False, **kw)

    def _url(self, path: str) -> str:
        if not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError(f"path must be absolute and without a query: {path!r}")
        return self.base_url + path

    def _call(
        self,
        method: str,
        path: str,
        *,
        consume: Callable[[requests.Response], T],
        close: bool,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        idempotent: bool | None = None,
    ) -> T:
        method = method.upper()
        url = self._url(path)
        retry_safe = idempotent if idempotent is not None else method in IDEMPOTENT_METHODS
        state = _CallState()

        def attempt() -> T:
            if state.last_error is not None and self._stopping():
                raise state.last_error  # stopping: no further attempt (the stop policy ends it)
            state.retry_after = None
            state.status = None
            try:
                resp = self._send(
                    method, url, path, params, json, headers, stream, retry_safe, state, data
                )
            except HelpdeskError as exc:
                state.last_error = exc
                raise
            try:
                return consume(resp)
            except _TRANSPORT_ERRORS as exc:
                error = self._transport_error(exc, method, path, retry_safe, resp.status_code)
                state.last_error = error
                raise error from exc
            except HelpdeskError as exc:
                state.last_error = exc
                raise
            finally:
                if close:
                    resp.close()

        wait = RetryAfterWait(self.policy, self._clock, self._rng, state)
        retrying = tenacity.Retrying(
            stop=_StopPolicy(self.policy, wait, state, stopping=self._stopping),
            wait=wait,
            sleep=self._wait,
            retry=tenacity.retry_if_exception(_is_retryable),
            before_sleep=lambda rs: self._log_retry(rs, method, path),
            reraise=True,
        )
        try:
            result = retrying(attempt)
        except HelpdeskError as exc:
            self._note_failure(exc, method, path)
            raise
        return result

    def _send(
        self,
        method: str,
        url: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        stream: bool,
        retry_safe: bool,
        state: _CallState,
        data: bytes | None = None,
    ) -> requests.Response:
        share = current_share()
        if share is not None:
            share.before(self.policy, self._clock)
        self._ping()
        self._bucket.acquire()
        self._ping()
        try:
            resp = self._session.send(
                self._prepare(method, url, params, json, headers, data),
                timeout=self.policy.timeout,
                verify=self.policy.verify,
                cert=self._session.cert,
                proxies=self._session.proxies,
                allow_redirects=False,
                stream=stream,
            )
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc, method, path, retry_safe, None) from exc
        if share is not None:
            share.answered += 1  # where the session's response hooks ran
        state.status = resp.status_code
        self._note_server_time(resp.headers.get("Date"))
        log.debug("http.response method=%s path=%s status=%s", method, path, resp.status_code)
        if 300 <= resp.status_code < 400:
            resp.close()
            raise self._redirect_error(resp, method, path, url)
        if resp.status_code >= 300:
            state.retry_after = resp.headers.get("Retry-After")
            try:
                raise_for_response(
                    resp, clock=self._clock, retry_after_max=self.policy.retry_after_max,
                    idempotent=retry_safe,
                )  # fmt: skip
            finally:
                resp.close()
        return resp

    def _prepare(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        data: bytes | None = None,
    ) -> requests.PreparedRequest:
        """The request as ``Session.request`` would prepare it here (the session's headers
        and cookies, ours on top, the auth), without its per-request merging: with
        ``trust_env`` off that merges only empty settings, yet each ``merge_setting`` of two
        mappings and each encoding of a params dict asks ``isinstance`` of requests'
        runtime-checkable Protocols (``SupportsItems``, ``SupportsRead``), eight a request,
        which walk the Protocol's attributes every time (about 8% of the client's CPU in the
        burst's profile, docs/benchmarks.md). The query is encoded here, as requests would
        (values ``None`` dropped, sequences repeated), so it is passed on as a string."""
        merged = dict(self._session.headers)
        if headers:
            merged.update(headers)
        request = requests.Request(
            method,
            url,
            headers={k: v for k, v in merged.items() if v is not None},
            json=json,
            data=data,
            params=_query(params),
            auth=self._auth,
            cookies=self._session.cookies,
            hooks=self._session.hooks,
        )
        return request.prepare()

    def _redirect_error(
        self, resp: requests.Response, method: str, path: str, url: str
    ) -> RedirectError:
        """A 3xx is never followed, on any verb. To the same host it means the configured base
        URL is not the helpdesk's final address (a moved prefix, a slash a proxy adds): a
        configuration error, so it names the status and the path it points to.
        To another host it names neither the host nor the path. Query strings are dropped,
        since a redirect may carry a token there."""
        where: dict[str, Any] = {
            "status": resp.status_code, "method": method, "path": path,
            "request_id": _request_id(resp),
        }  # fmt: skip
        location = resp.headers.get("Location")
        if not location:
            return RedirectError(f"HTTP {resp.status_code} redirect without a Location", **where)
        target = urljoin(resp.url or url, location.strip())
        if _origin(target) != self._origin:
            return RedirectError(
                f"HTTP {resp.status_code} redirect to another host refused", **where
            )
        moved_to = SECRETS.redact(urlsplit(target).path or "/")[:MESSAGE_LIMIT]
        return RedirectError(
            f"the helpdesk URL redirects (HTTP {resp.status_code} to {moved_to}); redirects are "
            "not followed: set the helpdesk URL to the address it redirects to",
            **where,
        )

    @staticmethod
    def _transport_error(
        exc: BaseException, method: str, path: str, retry_safe: bool, status: int | None
    ) -> HelpdeskError:
        """Map a network-level failure; ``status`` is set when the body of a 2xx broke off."""
        reason = classify_transport_error(exc)
        text = f"{_REASON_TEXT[reason]} ({type(exc).__name__})"
        if reason == "connect" or retry_safe:
            return TransientError(text, method=method, path=path, status=status)
        return AmbiguousWrite(
            f"{text}: the {method} may have been applied", method=method, path=path, status=status
        )

    @staticmethod
    def _log_retry(retry_state: tenacity.RetryCallState, method: str, path: str) -> None:
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        status = getattr(exc, "status", None)
        reason = "status" if status is not None and status >= 300 else _reason_of(exc)
        # DEBUG: an outage is said once by the worker (helpdesk.unreachable), not per retry
        log.debug(
            "http.retry method=%s path=%s status=%s reason=%s attempt=%d wait=%.1f",
            method, path, status if status is not None else "-", reason,
            retry_state.attempt_number, wait,
        )  # fmt: skip

    def _note_failure(self, exc: HelpdeskError, method: str, path: str) -> None:
        """Log a call that failed for good. Whether the helpdesk as a whole is down (or in
        maintenance) is said once by the worker loop, which sees every adapter's errors; here
        a give-up is only a DEBUG line, so an outage does not repeat a WARNING every pass."""
        if isinstance(exc, Unauthorized):
            # the token is wrong or expired, everything will fail; the caller stops and says
            # so in one line (the worker's CLI), so here it is only DEBUG, once
            if not self._auth_failed:
                self._auth_failed = True
                log.debug("http.auth_failed method=%s path=%s status=401", method, path)
            return
        if isinstance(exc, Forbidden):
            # this token lacks one permission; the caller may expect that (optional
            # endpoints): WARNING, once per path
            if path not in self._forbidden:
                self._forbidden.add(path)
                log.warning("http.forbidden method=%s path=%s status=%s", method, path, exc.status)
            return
        if isinstance(exc, RateLimited):
            log.debug(
                "http.giveup method=%s path=%s status=429 retry_after=%.1f",
                method, path, exc.retry_after,
            )  # fmt: skip
            return
        if isinstance(exc, TransientError):
            log.debug("http.giveup method=%s path=%s status=%s", method, path, exc.status)
            return
        if isinstance(exc, AmbiguousWrite):
            log.warning(
                "http.ambiguous_write method=%s path=%s status=%s", method, path, exc.status
            )


def _query(params: Mapping[str, Any] | None) -> str:
    """``params`` as requests encodes a dict of them: ``None`` values dropped, a list or tuple
    value repeated, the rest ``str``-ed, UTF-8, ``+`` for spaces."""
    if not params:
        return ""
    pairs: list[tuple[str, Any]] = []
    for key, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        pairs += [(key, v) for v in values if v is not None]
    return urlencode(pairs)


def _is_retryable(exc: BaseException) -> bool:
    """tenacity ``retry=``: 429s, and transient errors that are network-level (no status, or
    a 2xx whose body broke off) or 502/503/504. Other 5xx on idempotent calls are transient
    for the caller but not worth repeating at once. A non-idempotent POST only ever gets a
    ``TransientError`` when nothing was sent, so this predicate needs no per-verb rule."""
    if isinstance(exc, RateLimited):
        return True
    if isinstance(exc, TransientError):
        status = exc.status
        return status is None or status in RETRY_STATUSES or 200 <= status < 300
    return False


def _reason_of(exc: BaseException | None) -> str:
    if exc is None:
        return "-"
    cause = exc.__cause__
    return classify_transport_error(cause) if cause is not None else "other"
