"""What every job gets (``JobContext``) and what it gives back (``JobResult``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.base import HelpdeskAdapter
    from escalations.bindings.base import HelpdeskBinding
    from escalations.clock import Clock
    from escalations.effects.outbox import Outbox
    from escalations.faults import FaultPoints
    from escalations.lifecycle import Lifecycle
    from escalations.mappings import Mappings
    from escalations.profile import ProcessProfile
    from escalations.settings import Settings
    from escalations.store.base import Store


@dataclass(frozen=True)
class JobContext:
    """Built once by the application layer (``escalations.app.wiring``). Jobs read through
    ``adapter``, decide, and record what to write through ``lifecycle`` and ``outbox``; the
    worker's effects step carries the writes out after each job."""

    settings: Settings
    clock: Clock
    store: Store
    adapter: HelpdeskAdapter
    binding: HelpdeskBinding
    mappings: Mappings
    outbox: Outbox
    lifecycle: Lifecycle
    faults: FaultPoints
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def profile(self) -> ProcessProfile:
        return self.mappings.profile


@dataclass
class JobResult:
    name: str
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def merge(self, other: JobResult) -> None:
        for key, n in other.counts.items():
            self.add(key, n)

    def summary(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()) if v)
        return shown or "nothing to do"
