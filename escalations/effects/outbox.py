"""Step 1 of intent → claim → look → effect → commit: recording an intent (the outbox).

``Outbox.request(tx, intent)`` inserts the effect row in the caller's transaction, the same one
that moves the poll cursor or the escalation's state, so the decision and the write it needs
are recorded together or not at all. ``UNIQUE(kind, key)`` makes a second request a no-op. The
kind must be known and the payload must be its model; ``after`` must name an effect already
stored (or requested earlier in the same transaction): asking to wait for something that does
not exist is an error here, not a silent deferral later.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from escalations.clock import Clock
from escalations.effects.base import EffectError, Intent, Registry
from escalations.faults import FaultPoints, NoFaults
from escalations.store.base import Store, Transaction

log = logging.getLogger(__name__)


class Outbox:
    def __init__(
        self, store: Store, registry: Registry, clock: Clock, faults: FaultPoints | None = None
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.faults = faults or NoFaults()
        self._requested: list[tuple[Transaction, str]] = []

    def request(self, tx: Transaction, intent: Intent) -> bool:
        """Record ``intent`` in the caller's transaction. ``False``: already requested.

        After that transaction commits, call ``committed(tx)`` (or use ``transaction()``,
        which does both).

        Raises:
            EffectError: unknown kind, a payload that is not the kind's model, or an
                ``after`` that names no stored effect.
        """
        kind = self.registry.get(intent.kind)
        if kind is None:
            raise EffectError(f"no effect kind {intent.kind!r} (key {intent.key})")
        if not isinstance(intent.payload, kind.payload_type):
            raise EffectError(
                f"{intent.kind}: payload must be {kind.payload_type.__name__}, "
                f"not {type(intent.payload).__name__}"
            )
        if intent.after is not None and (
            self.store.effect_by_key(intent.after.kind, intent.after.key) is None
        ):
            raise EffectError(
                f"{intent.kind} {intent.key}: 'after' names {intent.after}, which was never "
                "requested"
            )
        effect_id = self.store.insert_effect(
            tx,
            kind=intent.kind,
            key=intent.key,
            marker=intent.marker.value,
            payload_json=intent.payload_json,
            payload_sha256=intent.payload_sha256,
            payload_version=intent.version,
            escalation_id=intent.escalation_id,
            after=(intent.after.kind, intent.after.key) if intent.after else None,
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


__all__ = ["EffectError", "Outbox"]
