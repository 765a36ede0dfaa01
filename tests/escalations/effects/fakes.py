"""A tiny stand-in for the helpdesk and one non-idempotent effect kind ("create", like creating
the escalation ticket), for the executor tests. The remote survives "crashes": only the worker
side is thrown away."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from connector.errors import AmbiguousWrite
from escalations.clock import FakeClock
from escalations.effects import EffectKind, Executor, Intent, Outbox, Payload, Registry
from escalations.faults import FaultPoints
from escalations.store import SqliteStore

KIND = "create"
AMBIGUOUS_APPLIED = "ambiguous-applied"  # write lands, then the response is lost
AMBIGUOUS_LOST = "ambiguous-lost"  # request dies in flight, nothing written


class FakeRemote:
    """Objects created with a marker; ``planned`` faults are used up one per write."""

    def __init__(self) -> None:
        self.objects: dict[str, str] = {}  # remote id -> marker
        self.write_attempts = 0
        self.finds = 0
        self.planned: list[Any] = []

    def create(self, marker: str) -> str:
        self.write_attempts += 1
        fault = self.planned.pop(0) if self.planned else None
        if fault == AMBIGUOUS_APPLIED:
            self._add(marker)
            raise AmbiguousWrite("read timeout after send", method="POST", path="/api/v1/x")
        if fault == AMBIGUOUS_LOST:
            raise AmbiguousWrite("connection reset after send", method="POST", path="/api/v1/x")
        if isinstance(fault, BaseException):
            raise fault
        return self._add(marker)

    def _add(self, marker: str) -> str:
        remote_id = str(len(self.objects) + 1)
        self.objects[remote_id] = marker
        return remote_id

    def find(self, marker: str) -> str | None:
        self.finds += 1
        for remote_id, found in self.objects.items():
            if found == marker:
                return remote_id
        return None

    def count(self, marker: object) -> int:
        return sum(1 for m in self.objects.values() if m == str(marker))


class FileRemote(FakeRemote):
    """The same, kept in a file (fsynced per write) so it outlives a SIGKILLed process."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        if path.exists():
            for line in path.read_text().splitlines():
                remote_id, marker = line.split()
                self.objects[remote_id] = marker

    def _add(self, marker: str) -> str:
        remote_id = super()._add(marker)
        with self.path.open("a") as f:
            f.write(f"{remote_id} {marker}\n")
            f.flush()
            os.fsync(f.fileno())
        return remote_id


class FakePayload(Payload):
    title: str = ""


class CreateHandler(EffectKind[FakePayload]):
    """Non-idempotent: a second ``apply`` makes a second object. ``find`` looks by marker."""

    name: ClassVar[str] = KIND
    payload_type = FakePayload

    def __init__(self, remote: FakeRemote | None = None) -> None:
        self.remote = remote or FakeRemote()
        self.commits: list[tuple[int, str | None]] = []

    def apply(self, effect: Any, payload: FakePayload) -> str | None:
        return self.remote.create(effect.marker.value)

    def find(self, effect: Any, payload: FakePayload) -> str | None:
        return self.remote.find(effect.marker.value)

    def on_commit(
        self, tx: object, effect: Any, payload: FakePayload, remote_id: str | None
    ) -> None:
        self.commits.append((effect.id, remote_id))


def fake_intent(key: str, title: str = "", **kw: Any) -> Intent:
    return CreateHandler.intent(key, FakePayload(title=title), **kw)


class Effects:
    """An outbox and an executor on one store, as the worker has them: ``request`` /
    ``transaction`` / ``committed`` go to the outbox, ``run_pending`` to the executor."""

    def __init__(
        self,
        store: SqliteStore,
        kinds: list[EffectKind[Any]],
        clock: FakeClock,
        faults: FaultPoints | None = None,
        **executor: Any,
    ) -> None:
        self.store = store
        self.registry = Registry().add(*kinds)
        self.outbox = Outbox(store, self.registry, clock, faults)
        self.executor = Executor(
            store, self.registry, self.outbox, clock, faults=faults, **executor
        )
        self.request = self.outbox.request
        self.transaction = self.outbox.transaction
        self.committed = self.outbox.committed
        self.run_pending = self.executor.run_pending

    @property
    def faults(self) -> FaultPoints:
        return self.executor.faults

    @faults.setter
    def faults(self, faults: FaultPoints) -> None:
        self.outbox.faults = faults
        self.executor.faults = faults
