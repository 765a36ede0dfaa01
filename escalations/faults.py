"""Named crash points (FoundationDB's BUGGIFY, ``RELIABILITY.md`` §B3).

Production code calls ``faults.point(name, kind=...)`` at each step of intent → effect → commit;
``NoFaults`` makes that a no-op. Tests crash there: ``RaiseAt`` raises ``SimulatedCrash`` (a
``BaseException``, so no ``except Exception`` swallows it) and ``CrashAt`` sends the process
``SIGKILL``. A subprocess picks its fault from ``ESCALATIONS_TEST_CRASH_AT=<point>:<kind>:<n>``
(``kind`` may be ``*``; ``n`` counts matching hits from 1).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Protocol

from escalations.errors import ConfigError

POINTS = ("intent.committed", "effect.claimed", "effect.sent", "effect.committed")
"""The steps of every write to the helpdesk."""
ARCHIVE_POINTS = (
    "archive.begun",
    "archive.files_written",
    "archive.placed",
    "archive.committed",
    "purge.moved",
    "purge.recorded",
)
"""The steps of filing a hard copy (its intent recorded; files written under the temporary
name; renamed into place; recorded) and of purging one (moved out of place; recorded)."""
KNOWN = POINTS + ARCHIVE_POINTS
ENV_VAR = "ESCALATIONS_TEST_CRASH_AT"


class FaultPoints(Protocol):
    def point(self, name: str, *, kind: str | None = None) -> None: ...


class SimulatedCrash(BaseException):
    """The process 'died' here. Deliberately not an ``Exception``."""


class NoFaults:
    def point(self, name: str, *, kind: str | None = None) -> None:
        return None


class _AtNthHit:
    def __init__(self, name: str, kind: str | None = None, nth: int = 1) -> None:
        if name not in KNOWN:
            raise ValueError(f"unknown fault point {name!r}; known: {', '.join(KNOWN)}")
        if nth < 1:
            raise ValueError(f"nth counts from 1, not {nth}")
        self.name = name
        self.kind = None if kind in (None, "*") else kind
        self.nth = nth
        self.hits = 0
        self.fired = False

    def point(self, name: str, *, kind: str | None = None) -> None:
        if name != self.name or (self.kind is not None and kind != self.kind):
            return
        self.hits += 1
        if self.hits == self.nth:
            self.fired = True
            self._fire(name, kind)

    def _fire(self, name: str, kind: str | None) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, kind={self.kind!r}, nth={self.nth})"


class RaiseAt(_AtNthHit):
    """Raise ``exc`` (default ``SimulatedCrash``) at the ``nth`` hit of ``name`` for ``kind``."""

    def __init__(
        self,
        name: str,
        kind: str | None = None,
        nth: int = 1,
        exc: type[BaseException] = SimulatedCrash,
    ) -> None:
        super().__init__(name, kind, nth)
        self.exc = exc

    def _fire(self, name: str, kind: str | None) -> None:
        raise self.exc(f"simulated crash at {name} (kind {kind}, hit {self.hits})")


class CrashAt(_AtNthHit):
    """Kill this process with ``SIGKILL`` at the ``nth`` hit: no ``finally``, no flush."""

    def _fire(self, name: str, kind: str | None) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


def faults_from_env(environ: Mapping[str, str]) -> FaultPoints:
    """``CrashAt`` from ``ESCALATIONS_TEST_CRASH_AT``, or ``NoFaults`` when it is unset."""
    spec = environ.get(ENV_VAR, "").strip()
    if not spec:
        return NoFaults()
    parts = spec.split(":")
    if len(parts) > 3:
        raise ConfigError(f"{ENV_VAR}={spec!r}: expected <point>:<kind>:<n>")
    name = parts[0]
    kind = parts[1] if len(parts) > 1 and parts[1] else "*"
    try:
        nth = int(parts[2]) if len(parts) > 2 else 1
        return CrashAt(name, kind, nth)
    except ValueError as exc:
        raise ConfigError(f"{ENV_VAR}={spec!r}: {exc}") from None
