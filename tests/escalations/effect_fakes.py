"""A tiny stand-in for the helpdesk and one non-idempotent effect kind ("create", like creating
the escalation ticket), for the executor tests. The remote survives "crashes": only the worker
side is thrown away."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from connector.errors import AmbiguousWrite

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


class CreateHandler:
    """Non-idempotent: a second ``apply`` makes a second object. ``find`` looks by marker."""

    def __init__(self) -> None:
        self.commits: list[tuple[int, str | None]] = []

    def apply(self, adapter: FakeRemote, effect: Any) -> str | None:
        return adapter.create(effect.marker.value)

    def find(self, adapter: FakeRemote, effect: Any) -> str | None:
        return adapter.find(effect.marker.value)

    def on_commit(self, tx: object, effect: Any, remote_id: str | None) -> None:
        self.commits.append((effect.id, remote_id))
