"""What every job gets (``JobContext``) and what it gives back (``JobResult``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.base import HelpdeskAdapter
    from escalations.clock import Clock
    from escalations.effects import Effects
    from escalations.faults import FaultPoints
    from escalations.mappings import Mappings
    from escalations.settings import Settings
    from escalations.store.base import Store


@dataclass
class JobContext:
    settings: Settings
    clock: Clock
    store: Store
    adapter: HelpdeskAdapter
    mappings: Mappings
    effects: Effects
    faults: FaultPoints
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class JobResult:
    name: str
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def summary(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()) if v)
        return shown or "nothing to do"
