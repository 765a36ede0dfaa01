"""An in-memory helpdesk that speaks the Zammad REST API subset the connector uses, with
Zammad 6.5's semantics (``reference/zammad-api.md``): status codes and error bodies, page
caps, link and tag quirks, merging (``merge.py``), ``updated_at`` bumps, the outbound-email
rule and the seeded auto-reply. It mounts into ``responses`` (``mount``) and serves on a
loopback socket (``serve``); ``faults`` injects 429s, 5xx, refused connections, lost answers
and slow ones. The admin API provisioning uses (object manager with staged migrations,
states, groups, tags, users, macros and ``mass_macro``, overviews, triggers, webhooks, text
modules) is in ``admin.py``, ``object_manager.py`` and ``perform.py``; triggers call webhooks
from background threads (``webhooks.py``, recorded in ``ZammadSandbox.webhook_deliveries``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.core import AttachmentSpec, Exchange, ZammadSandbox
from sandbox.faults import (
    Fault,
    FaultQueue,
    LoseResponse,
    RateLimited,
    Refuse,
    ServerError,
    Slow,
    Truncate,
)
from sandbox.records import ApiError
from sandbox.server import SandboxServer, serve
from sandbox.webhooks import WebhookDelivery, WebhookDispatcher

if TYPE_CHECKING:
    import responses


def mount(sandbox: ZammadSandbox, rsps: responses.RequestsMock, base_url: str) -> None:
    """Answer every request under ``base_url`` from ``sandbox`` (``sandbox/_responses.py``).

    Imported on use: ``responses`` is a test dependency, and the demo and the ``sandbox``
    command must run without it."""
    from sandbox._responses import mount as mount_into_responses

    mount_into_responses(sandbox, rsps, base_url)


__all__ = [
    "ApiError",
    "AttachmentSpec",
    "Exchange",
    "Fault",
    "FaultQueue",
    "LoseResponse",
    "RateLimited",
    "Refuse",
    "SandboxServer",
    "ServerError",
    "Slow",
    "Truncate",
    "WebhookDelivery",
    "WebhookDispatcher",
    "ZammadSandbox",
    "mount",
    "serve",
]
