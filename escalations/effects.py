"""Helpdesk writes, exactly once: intent → claim → look → effect → commit (``RELIABILITY.md`` §B2).

::

      a job's transaction                          the executor, one effect at a time
    ┌──────────────────────────────┐
    │ 1 INTENT   effect row        │  same transaction as the cursor or state change;
    │   'pending', UNIQUE(kind,key)│  a second request is a no-op
    └──────────────┬───────────────┘  ── point("intent.committed")
                   ▼
    ┌──────────────────────────────┐
    │ 2 CLAIM    'in_flight',      │  committed before any HTTP call
    │   attempts += 1              │  ── point("effect.claimed")
    └──────────────┬───────────────┘
                   ▼   only if attempts > 1 or the row was already in flight
    ┌──────────────────────────────┐
    │ 3 LOOK     handler.find()    │── found ─────────────────────────┐
    │   by marker, database reads  │                                  │
    └──────────────┬───────────────┘                                  │
                   ▼ not found                                        │
    ┌──────────────────────────────┐                                  │
    │ 4 EFFECT   handler.apply()   │  exactly one write, marker in it │
    └──────────────┬───────────────┘  ── point("effect.sent")         │
                   ▼                                                  │
    ┌──────────────────────────────┐◄─────────────────────────────────┘
    │ 5 COMMIT   'done', remote_id,│  one transaction with the handler's on_commit
    │   handler.on_commit(tx, ...) │  ── point("effect.committed")
    └──────────────────────────────┘

    errors in 3-4   AmbiguousWrite            stays in_flight; the next pass looks first
                    TransientError, RateLimited   back to pending, not_before = now + wait
                    Rejected, NotFound, Conflict  failed, with last_error
                    AuthError 403             failed (about this write: group access, tags)
                    AuthError 401             propagates (the worker stops); row in_flight
                    any error at max_attempts failed

A crash anywhere leaves the row pending or in flight; the next pass finishes it without a
second write, because an in-flight row is always looked for (by marker) before writing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any, Protocol

from connector.base import HelpdeskAdapter, Marker
from connector.errors import (
    AmbiguousWrite,
    AuthError,
    HelpdeskError,
    RateLimited,
    TransientError,
)
from escalations.clock import Clock
from escalations.faults import FaultPoints, NoFaults
from escalations.markers import marker_for
from escalations.models import Effect, EffectState
from escalations.store.base import Store, Transaction

log = logging.getLogger(__name__)

ERROR_TEXT_LIMIT = 1024


@dataclass(frozen=True)
class Intent:
    """A helpdesk write a job wants made. ``payload`` must be JSON-able."""

    kind: str
    key: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    escalation_id: int | None = None
    after: tuple[str, str] | None = None
    """``(kind, key)`` of an effect that must be done before this one runs."""

    def __post_init__(self) -> None:
        if not self.kind or not self.key:
            raise ValueError("an intent needs a kind and a key")
        self.payload_json  # noqa: B018 - fail now, not in the executor, if not JSON-able

    @property
    def marker(self) -> Marker:
        return marker_for(self.kind, self.key)

    @property
    def ref(self) -> tuple[str, str]:
        """What another intent's ``after`` names to wait for this one."""
        return (self.kind, self.key)

    @cached_property
    def payload_json(self) -> str:
        return json.dumps(
            self.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )

    @property
    def payload_sha256(self) -> str:
        return hashlib.sha256(self.payload_json.encode()).hexdigest()


class EffectHandler(Protocol):
    """Carries out one effect kind. May also define
    ``on_commit(tx, effect, remote_id) -> None``, run inside the commit transaction."""

    def apply(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        """Make exactly one helpdesk write carrying ``effect.marker``; return the remote id."""
        ...

    def find(self, adapter: HelpdeskAdapter, effect: Effect) -> str | None:
        """The remote id of an earlier write of this effect, found by marker with database-
        backed reads; ``None`` if absent, or if the kind is idempotent and needs no look."""
        ...


@dataclass
class ExecutorResult:
    done: int = 0
    failed: int = 0
    ambiguous: int = 0
    deferred: int = 0
    """Put back for later: a transient error, or waiting for a prerequisite."""

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


class Effects:
    def __init__(
        self,
        store: Store,
        adapter: HelpdeskAdapter,
        handlers: Mapping[str, EffectHandler],
        clock: Clock,
        faults: FaultPoints | None = None,
        stop_event: threading.Event | None = None,
        max_attempts: int = 10,
        backoff_base: timedelta = timedelta(seconds=5),
        backoff_max: timedelta = timedelta(minutes=15),
        settle: timedelta = timedelta(0),
    ) -> None:
        self.store = store
        self.adapter = adapter
        self.handlers = handlers
        self.clock = clock
        self.faults = faults or NoFaults()
        self.stop_event = stop_event
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.settle = settle
        """How long a write of unknown outcome may still be running in the helpdesk: an
        in-flight row is not looked for (and so not sent again) before that."""
        self._requested: list[tuple[Transaction, str]] = []

    # -- step 1: intent ----------------------------------------------------------------
    def request(self, tx: Transaction, intent: Intent) -> bool:
        """Record ``intent`` in the caller's transaction. ``False``: already requested.

        After that transaction commits, call ``committed(tx)`` (or use ``transaction()``,
        which does both)."""
        effect_id = self.store.insert_effect(
            tx,
            kind=intent.kind,
            key=intent.key,
            marker=intent.marker.value,
            payload_json=intent.payload_json,
            payload_sha256=intent.payload_sha256,
            escalation_id=intent.escalation_id,
            after=intent.after,
            at=self.clock.now(),
        )
        if effect_id is None:
            existing = self.store.effect_by_key(intent.kind, intent.key)
            if existing is not None and existing.payload_sha256 != intent.payload_sha256:
                log.warning(
                    "effect.payload_differs kind=%s key=%s id=%s (the first request stands)",
                    intent.kind,
                    intent.key,
                    existing.id,
                )
            return False
        self._requested.append((tx, intent.kind))
        log.debug("effect.requested kind=%s key=%s id=%s", intent.kind, intent.key, effect_id)
        return True

    def committed(self, tx: Transaction) -> None:
        """The transaction ``tx`` has committed: pass the ``intent.committed`` fault point
        once for each effect requested in it."""
        kinds = [kind for t, kind in self._requested if t is tx]
        self._forget(tx)
        for kind in kinds:
            self.faults.point("intent.committed", kind=kind)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """``store.transaction()`` that also calls ``committed`` after the commit."""
        tx: Transaction | None = None
        try:
            with self.store.transaction() as tx:
                yield tx
        except BaseException:
            if tx is not None:
                self._forget(tx)
            raise
        self.committed(tx)

    def _forget(self, tx: Transaction) -> None:
        self._requested = [(t, k) for t, k in self._requested if t is not tx]

    # -- steps 2-5: the executor ---------------------------------------------------------
    def run_pending(self, limit: int | None = None) -> ExecutorResult:
        """Run due effects, oldest first; at most ``limit`` are started. Stops starting new
        ones once ``stop_event`` is set. ``AuthError`` propagates."""
        result = ExecutorResult()
        started = 0
        now = self.clock.now()
        for effect in self.store.runnable_effects(now):
            if self.stop_event is not None and self.stop_event.is_set():
                log.info("effect.stopping started=%s", started)
                break
            if limit is not None and started >= limit:
                break
            if effect.state is EffectState.IN_FLIGHT and effect.updated_at + self.settle > now:
                result.deferred += 1  # its last attempt may still be running in the helpdesk
                continue
            handler = self.handlers.get(effect.kind)
            if handler is None:
                self._fail(effect, f"no handler for effect kind '{effect.kind}'")
                result.failed += 1
                continue
            if effect.after is not None:
                waiting = self._prerequisite(effect)
                if waiting is not None:
                    result.count(waiting)
                    continue
            started += 1
            result.count(self._run_one(effect, handler))
        return result

    def _prerequisite(self, effect: Effect) -> str | None:
        """``None`` if ``effect`` may run now, else the outcome to count for it."""
        assert effect.after is not None
        before = self.store.effect_by_key(*effect.after)
        if before is not None and before.state in (EffectState.DONE, EffectState.FAILED):
            # ``after`` orders writes; it does not make them depend on each other: one copy
            # the helpdesk refused for good must not hold back every later one.
            return None
        return "deferred"

    def _run_one(self, effect: Effect, handler: EffectHandler) -> str:
        was_in_flight = effect.state is EffectState.IN_FLIGHT
        with self.store.transaction() as tx:
            effect = self.store.claim_effect(tx, effect.id)
        self.faults.point("effect.claimed", kind=effect.kind)
        try:
            remote_id = None
            if was_in_flight or effect.attempts > 1:
                remote_id = handler.find(self.adapter, effect)
                if remote_id is not None:
                    log.info(
                        "effect.found kind=%s id=%s remote=%s", effect.kind, effect.id, remote_id
                    )
            if remote_id is None:
                remote_id = handler.apply(self.adapter, effect)
                self.faults.point("effect.sent", kind=effect.kind)
        except AuthError as exc:
            if exc.status != 403:
                raise  # the token itself was refused: nothing else can work either
            # 403 is about this write (the bot lacks access to this ticket's group, or may
            # not create that tag): fail this effect, keep the worker and the others going.
            self._fail(effect, _describe(exc))
            return "failed"
        except AmbiguousWrite as exc:
            return self._retry(effect, exc, EffectState.IN_FLIGHT, "ambiguous")
        except RateLimited as exc:
            wait = max(timedelta(seconds=exc.retry_after), self._backoff(effect.attempts))
            return self._retry(effect, exc, EffectState.PENDING, "deferred", wait)
        except TransientError as exc:
            return self._retry(effect, exc, EffectState.PENDING, "deferred")
        except HelpdeskError as exc:  # Rejected, NotFound, Conflict and the other permanent ones
            self._fail(effect, _describe(exc))
            return "failed"
        except Exception as exc:  # a handler bug: the write may have happened, so look next time
            log.exception("effect.handler_error kind=%s id=%s", effect.kind, effect.id)
            return self._retry(effect, exc, EffectState.IN_FLIGHT, "ambiguous")
        try:
            # self.transaction(): intents on_commit requests (the follow-ups) pass the
            # "intent.committed" point after this commit, like any other intent.
            with self.transaction() as tx:
                self.store.finish_effect(tx, effect.id, EffectState.DONE, remote_id=remote_id)
                on_commit = getattr(handler, "on_commit", None)
                if on_commit is not None:
                    on_commit(tx, effect, remote_id)
        except Exception as exc:  # an on_commit bug: rolled back; the row stays in flight
            log.exception("effect.commit_error kind=%s id=%s", effect.kind, effect.id)
            return self._retry(effect, exc, EffectState.IN_FLIGHT, "ambiguous")
        log.info("effect.done kind=%s id=%s remote=%s", effect.kind, effect.id, remote_id)
        self.faults.point("effect.committed", kind=effect.kind)
        return "done"

    def _retry(
        self,
        effect: Effect,
        exc: BaseException,
        state: EffectState,
        outcome: str,
        wait: timedelta | None = None,
    ) -> str:
        error = _describe(exc)
        if effect.attempts >= self.max_attempts:
            if state is EffectState.IN_FLIGHT:
                error += " (the last write may have been applied; its marker is "
                error += f"{effect.marker})"
            self._fail(effect, f"gave up after {effect.attempts} attempts: {error}")
            return "failed"
        not_before = self.clock.now() + (wait or self._backoff(effect.attempts))
        with self.store.transaction() as tx:
            self.store.finish_effect(
                tx, effect.id, state, last_error=error[:ERROR_TEXT_LIMIT], not_before=not_before
            )
        log.warning(
            "effect.retry kind=%s id=%s attempt=%s state=%s not_before=%s error=%s",
            effect.kind,
            effect.id,
            effect.attempts,
            state,
            not_before.isoformat(),
            error,
        )
        return outcome

    def _fail(self, effect: Effect, error: str) -> None:
        """Mark ``effect`` failed for good; the handler's optional
        ``on_fail(tx, effect, error)`` runs in the same transaction (it may record the
        consequence and request follow-up writes, e.g. telling the agent)."""
        on_fail = getattr(self.handlers.get(effect.kind), "on_fail", None)
        try:
            with self.transaction() as tx:
                self.store.finish_effect(
                    tx, effect.id, EffectState.FAILED, last_error=error[:ERROR_TEXT_LIMIT]
                )
                if on_fail is not None:
                    on_fail(tx, effect, error)
        except Exception:  # an on_fail bug must not leave the effect retrying forever
            log.exception("effect.fail_hook_error kind=%s id=%s", effect.kind, effect.id)
            with self.store.transaction() as tx:
                self.store.finish_effect(
                    tx, effect.id, EffectState.FAILED, last_error=error[:ERROR_TEXT_LIMIT]
                )
        log.error("effect.failed kind=%s id=%s error=%s", effect.kind, effect.id, error)

    def _backoff(self, attempts: int) -> timedelta:
        exponent = min(max(attempts - 1, 0), 32)
        wait: timedelta = min(self.backoff_base * (2**exponent), self.backoff_max)
        return wait


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_LIMIT]
