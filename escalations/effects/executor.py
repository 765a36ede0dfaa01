"""Helpdesk (and file) writes, exactly once: intent → claim → look → effect → commit
(``RELIABILITY.md`` §B2). The outbox (``outbox.py``) records intents; this is the rest.

::

      a job's transaction                          the executor, one effect at a time
    ┌──────────────────────────────┐
    │ 1 INTENT   effect row        │  same transaction as the cursor or state change;
    │   'pending', UNIQUE(kind,key)│  a second request is a no-op (outbox.py)
    └──────────────┬───────────────┘  ── point("intent.committed")
                   ▼
    ┌──────────────────────────────┐  one statement: the oldest claimable row whose
    │ 2 CLAIM    'in_flight',      │  'after' has finished, not under a live lease;
    │   attempts += 1, claimed_by, │  committed before any HTTP call
    │   lease_until                │  ── point("effect.claimed")
    └──────────────┬───────────────┘
                   ▼   only if an earlier attempt may have been sent (attempts > 1)
    ┌──────────────────────────────┐
    │ 3 LOOK     kind.find()       │── found ─────────────────────────┐
    │   by marker, database reads  │                                  │
    └──────────────┬───────────────┘                                  │
                   ▼ not found                                        │
    ┌──────────────────────────────┐                                  │
    │ 4 EFFECT   kind.apply()      │  exactly one write, marker in it │
    └──────────────┬───────────────┘  ── point("effect.sent")         │
                   ▼                                                  │
    ┌──────────────────────────────┐◄─────────────────────────────────┘
    │ 5 COMMIT   'done', remote_id,│  one transaction with the kind's on_commit
    │   kind.on_commit(tx, ...)    │  ── point("effect.committed")
    └──────────────────────────────┘

    errors in 3-4   AmbiguousWrite            stays in_flight, lease released; looked for
                                              once the settle window has passed
                    RateLimited, Maintenance, back to pending, not_before = now + wait; the
                    unreachable (connect, 502/   attempt is given back (nothing was applied)
                    503/504)                  and the sweep stops: the helpdesk is busy
                    RedirectError (3xx)       the same, logged as an error: the helpdesk
                                              URL is not its final address, so no write can
                                              land; none is dropped (they wait for the fix)
                    other TransientError      back to pending; counts as an attempt
                    OutOfReach (403 on a      back to pending, attempt given back, with
                    ticket it cannot read)    back-off; the sweep goes on. The poll makes it
                                              due again when the ticket is back in reach
                    Rejected, NotFound,       failed, with last_error; the kind's on_fail
                    Conflict, Forbidden (403) runs in the same transaction (an admin can
                                              replay it: ``effects retry``)
                    Unauthorized (401)        propagates (the worker stops); row in_flight
                    any error at max_attempts failed

A crash anywhere leaves the row pending or in flight; the next pass finishes it without a
second write, because a row that may have been sent is always looked for (by marker) first.

Several executors may share one store (PostgreSQL, or two threads on one SQLite file): the
claim is one statement, a row in flight under a live lease is never claimed by another
worker, and a row whose claimer died is taken over when its lease runs out — through the
look, so it is still written once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from connector.errors import (
    AmbiguousWrite,
    HelpdeskError,
    Maintenance,
    OutOfReach,
    RateLimited,
    RedirectError,
    TransientError,
    Unauthorized,
)
from escalations.clock import Clock
from escalations.effects.base import EffectError, Registry
from escalations.effects.outbox import Outbox
from escalations.errors import StoreUnavailable
from escalations.faults import FaultPoints, NoFaults
from escalations.models import Effect, EffectState
from escalations.store.base import Store

log = logging.getLogger(__name__)

ERROR_TEXT_LIMIT = 1024
UNREACHABLE_STATUSES = frozenset({502, 503, 504})
DEFAULT_LEASE = timedelta(minutes=15)
"""How long a claim keeps other executors off an effect: longer than one effect can take (a
few HTTP calls, each bounded by its timeouts and retry budget)."""


def new_worker_id() -> str:
    """``host:pid:random``: names the claims of one running worker."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class ExecutorResult:
    done: int = 0
    failed: int = 0
    ambiguous: int = 0
    deferred: int = 0
    """Put back for later (a transient error), or left waiting (a prerequisite not finished,
    a write of unknown outcome still settling, the sweep stopped early)."""

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def merge(self, other: ExecutorResult) -> None:
        for name in ("done", "failed", "ambiguous", "deferred"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _gives_back_the_attempt(exc: TransientError) -> bool:
    """Nothing was applied: throttled, in maintenance, or not reachable at all."""
    if isinstance(exc, RateLimited | Maintenance):
        return True
    return exc.status is None or exc.status in UNREACHABLE_STATUSES


class Executor:
    """Runs due effects, oldest first, one at a time.

    Args:
        store: the store holding the outbox.
        registry: the effect kinds, each with its target.
        outbox: used for the commit transactions, so intents ``on_commit`` requests pass the
            ``intent.committed`` point like any other.
        clock: the time source.
        worker_id: names this executor's claims (``new_worker_id()``).
        faults: named crash points (tests).
        stop_event: once set, no new effect is started.
        max_attempts: attempts that may have been sent before an effect fails for good.
        backoff_base, backoff_max: exponential back-off after an error.
        settle: how long a write of unknown outcome may still be running in the helpdesk: it
            is not looked for (and so not sent again) before that.
        lease: how long a claim keeps other executors away.
    """

    def __init__(
        self,
        store: Store,
        registry: Registry,
        outbox: Outbox,
        clock: Clock,
        *,
        worker_id: str | None = None,
        faults: FaultPoints | None = None,
        stop_event: threading.Event | None = None,
        max_attempts: int = 10,
        backoff_base: timedelta = timedelta(seconds=5),
        backoff_max: timedelta = timedelta(minutes=15),
        settle: timedelta = timedelta(0),
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self.store = store
        self.registry = registry
        self.outbox = outbox
        self.clock = clock
        self.worker_id = worker_id or new_worker_id()
        self.faults = faults or NoFaults()
        self.stop_event = stop_event
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.settle = settle
        self.lease = lease

    def _stopping(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    # -- the sweep -------------------------------------------------------------------------
    def run_pending(self, limit: int | None = None) -> ExecutorResult:
        """One sweep over the due effects in id order (a prerequisite always has a smaller id
        than what waits for it, so it runs first); effects requested during the sweep are
        reached in it too. At most ``limit`` are started. Stops starting new ones once
        ``stop_event`` is set, and after a write the helpdesk turned away as busy or
        unreachable. ``Unauthorized`` propagates."""
        result = ExecutorResult()
        started = 0
        last_id = 0
        while not self._stopping():
            if limit is not None and started >= limit:
                break
            now = self.clock.now()
            with self.store.transaction() as tx:
                effect = self.store.claim_next(
                    tx,
                    worker=self.worker_id,
                    now=now,
                    after_id=last_id,
                    lease_until=now + self.lease,
                    orphaned_before=now - self.settle,
                )
            if effect is None:
                break
            last_id = effect.id
            started += 1
            self.faults.point("effect.claimed", kind=effect.kind)
            outcome = self._run_claimed(effect)
            if outcome == "busy":
                result.deferred += 1
                log.info(
                    "effect.sweep_stopped id=%s: the helpdesk is busy or unreachable", effect.id
                )
                break
            result.count(outcome)
        if self._stopping() and started:
            log.info("effect.stopping started=%s", started)
        result.deferred += self.store.count_due(now=self.clock.now())
        return result

    def run_effects(self, effect_ids: Iterable[int]) -> ExecutorResult:
        """Carry out just these effects, in id order, each the same way a sweep does (claim,
        look, write, commit), and only if it is claimable now: one waiting for a prerequisite,
        under another worker's lease or backing off is left (counted as deferred) to the
        worker's sweeps. ``escalations report --repair`` runs its repairs this way, so the
        rest of the outbox stays the worker's. Stops like a sweep does."""
        result = ExecutorResult()
        for effect_id in sorted(set(effect_ids)):
            if self._stopping():
                result.deferred += 1
                continue
            effect = self._claim_exactly(effect_id)
            if effect is None:
                result.deferred += 1
                continue
            self.faults.point("effect.claimed", kind=effect.kind)
            outcome = self._run_claimed(effect)
            if outcome == "busy":
                result.deferred += 1
                break
            result.count(outcome)
        return result

    def _claim_exactly(self, effect_id: int) -> Effect | None:
        """Claim ``effect_id`` if it is claimable; a claim that picked another row (the next
        claimable one) is rolled back."""
        now = self.clock.now()
        try:
            with self.store.transaction() as tx:
                effect = self.store.claim_next(
                    tx,
                    worker=self.worker_id,
                    now=now,
                    after_id=effect_id - 1,
                    lease_until=now + self.lease,
                    orphaned_before=now - self.settle,
                )
                if effect is not None and effect.id != effect_id:
                    raise _NotClaimable
        except _NotClaimable:
            return None
        return effect

    def _run_claimed(self, effect: Effect) -> str:
        kind = self.registry.get(effect.kind)
        if kind is None:
            self._fail(effect, f"no effect kind {effect.kind!r} in this version", hook=False)
            return "failed"
        try:
            payload = kind.load(effect.payload, effect.payload_version)
        except EffectError as exc:
            self._fail(effect, str(exc), hook=False)
            return "failed"
        try:
            remote_id = None
            if effect.attempts > 1:
                remote_id = kind.find(effect, payload)
                if remote_id is not None:
                    log.info(
                        "effect.found kind=%s id=%s remote=%s", effect.kind, effect.id, remote_id
                    )
            if remote_id is None:
                remote_id = kind.apply(effect, payload)
                self.faults.point("effect.sent", kind=effect.kind)
        except Unauthorized:
            raise  # the token itself was refused: nothing else can work either
        except AmbiguousWrite as exc:
            return self._retry(effect, exc, EffectState.IN_FLIGHT, "ambiguous")
        except TransientError as exc:
            wait = self._backoff(effect.attempts + effect.deferrals)
            if isinstance(exc, RateLimited):
                wait = max(timedelta(seconds=exc.retry_after), wait)
            if _gives_back_the_attempt(exc):
                self._retry(effect, exc, EffectState.PENDING, "deferred", wait, give_back=True)
                return "busy"
            return self._retry(effect, exc, EffectState.PENDING, "deferred", wait)
        except RedirectError as exc:  # nothing was applied; the address is wrong, not the write
            log.error(  # noqa: TRY400
                "effect.paused kind=%s id=%s: the helpdesk redirects, writes wait until the"
                " helpdesk URL is its final address: %s",
                effect.kind,
                effect.id,
                exc,
            )
            wait = self._backoff(effect.attempts + effect.deferrals)
            self._retry(effect, exc, EffectState.PENDING, "deferred", wait, give_back=True)
            return "busy"
        except OutOfReach as exc:  # the target was moved out of sight: wait for it, never drop
            log.warning(
                "effect.waiting kind=%s id=%s: %s; it is written once the worker can read the"
                " ticket again",
                effect.kind,
                effect.id,
                exc,
            )
            return self._retry(effect, exc, EffectState.PENDING, "deferred", give_back=True)
        except HelpdeskError as exc:  # Rejected, NotFound, Conflict, Forbidden …
            self._fail(effect, _describe(exc), payload=payload, cause=exc)
            return "failed"
        except Exception as exc:  # a kind's bug: the write may have happened, so look next time
            log.exception("effect.handler_error kind=%s id=%s", effect.kind, effect.id)
            return self._retry(effect, exc, EffectState.IN_FLIGHT, "ambiguous")
        try:
            with self.outbox.transaction() as tx:
                self.store.finish_effect(tx, effect.id, EffectState.DONE, remote_id=remote_id)
                kind.on_commit(tx, effect, payload, remote_id)
        except StoreUnavailable:
            raise  # the store is gone, not a bug: the row stays in flight, the worker waits
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
        *,
        give_back: bool = False,
    ) -> str:
        error = _describe(exc)
        if not give_back and effect.attempts >= self.max_attempts:
            if state is EffectState.IN_FLIGHT:
                error += " (the last write may have been applied; its marker is "
                error += f"{effect.marker})"
            self._fail(effect, f"gave up after {effect.attempts} attempts: {error}")
            return "failed"
        not_before = self.clock.now() + (wait or self._backoff(effect.attempts + effect.deferrals))
        with self.store.transaction() as tx:
            self.store.finish_effect(
                tx,
                effect.id,
                state,
                last_error=error[:ERROR_TEXT_LIMIT],
                not_before=not_before,
                give_back_attempt=give_back,
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

    def _fail(
        self,
        effect: Effect,
        error: str,
        *,
        hook: bool = True,
        payload: object = None,
        cause: Exception | None = None,
    ) -> None:
        """Mark ``effect`` failed for good; the kind's ``on_fail`` runs in the same transaction
        (it may record the consequence and request follow-up writes, e.g. telling the agent).
        """
        kind = self.registry.get(effect.kind) if hook else None
        try:
            with self.outbox.transaction() as tx:
                self.store.finish_effect(
                    tx, effect.id, EffectState.FAILED, last_error=error[:ERROR_TEXT_LIMIT]
                )
                if kind is not None:
                    loaded = (
                        payload
                        if payload is not None
                        else kind.load(effect.payload, effect.payload_version)
                    )
                    kind.on_fail(tx, effect, loaded, error, cause)
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


class _NotClaimable(Exception):
    """Rolls back a claim that picked another effect than the one asked for."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_LIMIT]
