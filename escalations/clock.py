"""The one time source. Jobs, retries and the worker loop take a ``Clock`` (the protocol and the
system clock live in the kernel, ``connector.clock``); this module adds the clocks tests and
``run --once --at`` use, and instant parsing."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from connector.clock import Clock, SystemClock


class FakeClock:
    """A clock that only moves when told to; ``sleep`` advances it instantly and is recorded."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = self._now.astimezone(UTC)
        self._mono = 1000.0
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(timedelta(seconds=max(seconds, 0)))

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta
            self._mono += delta.total_seconds()

    def set(self, instant: datetime) -> None:
        with self._lock:
            if instant.tzinfo is None:
                raise ValueError("FakeClock needs an aware datetime")
            delta = instant.astimezone(UTC) - self._now
            self._now = instant.astimezone(UTC)
            self._mono += max(delta.total_seconds(), 0)


class FixedStartClock:
    """Runs from a given instant at real speed: ``run --once --at TIME`` uses it."""

    def __init__(self, start: datetime) -> None:
        self._start = start.astimezone(UTC)
        self._mono0 = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._mono0)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant; a value without an offset is rejected, ``Z`` is UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"'{text}' has no time zone; write it as 2026-12-01T09:30:00Z")
    return value.astimezone(UTC)


__all__ = ["Clock", "FakeClock", "FixedStartClock", "SystemClock", "parse_instant"]
