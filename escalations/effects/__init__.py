"""Writes, exactly once (``RELIABILITY.md`` §B2): the typed contract (``base``: kinds,
intents, payloads), the outbox that records intents (``outbox``), the executor that claims,
looks, writes and commits (``executor``, whose docstring draws the steps), and the kinds that
write to the helpdesk (``helpdesk``)."""

from __future__ import annotations

from escalations.effects.base import (
    EffectError,
    EffectKind,
    Intent,
    Payload,
    Registry,
    effect_key,
    key_purpose,
)
from escalations.effects.executor import Executor, ExecutorResult, new_worker_id
from escalations.effects.outbox import Outbox
from escalations.models import EffectRef

__all__ = [
    "EffectError",
    "EffectKind",
    "EffectRef",
    "Executor",
    "ExecutorResult",
    "Intent",
    "Outbox",
    "Payload",
    "Registry",
    "effect_key",
    "key_purpose",
    "new_worker_id",
]
