"""Webhook delivery as Zammad's ``TriggerWebhookJob`` does it (``reference/zammad-api.md``
§11.5): a POST of the JSON payload from a background job, never from the request that caused
it, with ``X-Zammad-Trigger``, ``X-Zammad-Delivery`` (unique per delivery),
``X-Hub-Signature: sha1=<HMAC-SHA1 of the raw body keyed with the signature token>`` and
``User-Agent: Zammad User Agent``; open timeout 4 s, read timeout 30 s; redirects are not
followed; a non-2xx answer (or no answer) is tried again after each delay of
``retry_delays`` (Zammad: 10 s, 20 s, 30 s, 40 s, so five attempts), then dropped.

Each delivery runs in a daemon thread of its own and sleeps on an ``Event``, so ``close``
ends the waits at once. ``deliveries`` records every one, with its attempts, for tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import requests

log = logging.getLogger(__name__)

ZAMMAD_USER_AGENT = "Zammad User Agent"
OPEN_TIMEOUT = 4.0
READ_TIMEOUT = 30.0
RETRY_DELAYS = (10.0, 20.0, 30.0, 40.0)
"""Zammad's schedule: five attempts in all."""

Sender = Callable[[str, bytes, dict[str, str], bool], int]
"""``(endpoint, body, headers, ssl_verify) → HTTP status``; raises for no answer."""


@dataclass
class WebhookDelivery:
    """One delivery: what was sent, and how each attempt ended (a status, or the name of
    the transport error)."""

    delivery_id: str
    trigger: str
    webhook_id: int
    endpoint: str
    headers: dict[str, str]
    body: bytes
    attempts: list[int | str] = field(default_factory=list)
    state: Literal["pending", "delivered", "dropped"] = "pending"


def signature(token: str, body: bytes) -> str:
    """``X-Hub-Signature``: ``sha1=`` and the hex HMAC-SHA1 of the raw body."""
    digest = hmac.new(token.encode("utf-8"), body, hashlib.sha1).hexdigest()
    return f"sha1={digest}"


def http_send(endpoint: str, body: bytes, headers: dict[str, str], ssl_verify: bool) -> int:
    """POST over real HTTP: no redirects, no proxies from the environment."""
    with requests.Session() as session:
        session.trust_env = False
        response = session.post(
            endpoint,
            data=body,
            headers=headers,
            timeout=(OPEN_TIMEOUT, READ_TIMEOUT),
            allow_redirects=False,
            verify=ssl_verify,
        )
        response.close()
        return response.status_code


class WebhookDispatcher:
    """Sends webhook deliveries in the background. ``retry_delays`` and ``send`` may be
    changed (tests shorten the schedule, or record instead of sending)."""

    def __init__(
        self, *, retry_delays: Sequence[float] = RETRY_DELAYS, send: Sender = http_send
    ) -> None:
        self.retry_delays: tuple[float, ...] = tuple(retry_delays)
        self.send = send
        self._lock = threading.Lock()
        self._deliveries: list[WebhookDelivery] = []
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()

    @property
    def deliveries(self) -> list[WebhookDelivery]:
        with self._lock:
            return list(self._deliveries)

    def deliver(
        self,
        *,
        trigger: str,
        webhook_id: int,
        endpoint: str,
        body: bytes,
        signature_token: str | None,
        ssl_verify: bool = True,
        basic_auth: tuple[str, str] | None = None,
    ) -> WebhookDelivery:
        """Queue one delivery and return its record at once (the sending is in a thread)."""
        delivery_id = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "*/*",
            "User-Agent": ZAMMAD_USER_AGENT,
            "X-Zammad-Trigger": trigger,
            "X-Zammad-Delivery": delivery_id,
        }
        if signature_token:
            headers["X-Hub-Signature"] = signature(signature_token, body)
        if basic_auth is not None:
            pair = f"{basic_auth[0]}:{basic_auth[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        delivery = WebhookDelivery(delivery_id, trigger, webhook_id, endpoint, headers, body)
        thread = threading.Thread(
            target=self._run,
            args=(delivery, ssl_verify),
            name=f"sandbox-webhook-{delivery_id[:8]}",
            daemon=True,
        )
        with self._lock:
            self._deliveries.append(delivery)
            self._threads.append(thread)
        thread.start()
        return delivery

    def _run(self, delivery: WebhookDelivery, ssl_verify: bool) -> None:
        delays = self.retry_delays
        for attempt in range(len(delays) + 1):
            if self._closing.is_set():
                break
            try:
                outcome: int | str = self.send(
                    delivery.endpoint, delivery.body, dict(delivery.headers), ssl_verify
                )
            except Exception as exc:  # noqa: BLE001 - any failure to get an answer is one attempt
                outcome = type(exc).__name__
            with self._lock:
                delivery.attempts.append(outcome)
                if isinstance(outcome, int) and 200 <= outcome < 300:
                    delivery.state = "delivered"
                    return
            log.debug("sandbox.webhook attempt=%d outcome=%s", attempt + 1, outcome)
            if attempt < len(delays) and self._closing.wait(delays[attempt]):
                break
        with self._lock:
            delivery.state = "dropped"

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every delivery so far has been delivered or dropped."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        return not any(t.is_alive() for t in threads)

    def close(self) -> None:
        """Stop waiting between attempts; pending deliveries are dropped."""
        self._closing.set()
