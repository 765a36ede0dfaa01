"""An in-memory helpdesk that speaks the Zammad REST API subset the connector uses, with
Zammad 6.5's semantics (``reference/zammad-api.md``): status codes and error bodies, page
caps, link and tag quirks, ``updated_at`` bumps, the outbound-email rule and the seeded
auto-reply. It mounts into ``responses`` (``mount``) and serves on a loopback socket
(``serve``); ``faults`` injects 429s, 5xx, refused connections, lost answers and slow ones."""

from __future__ import annotations

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
from sandbox.mount import mount
from sandbox.records import ApiError
from sandbox.server import SandboxServer, serve

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
    "ZammadSandbox",
    "mount",
    "serve",
]
