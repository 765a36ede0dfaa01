"""Domain errors, kept apart from the helpdesk errors in ``connector/errors.py``."""

from __future__ import annotations

from pathlib import Path

EX_CONFIG = 78  # sysexits.h: configuration error; systemd's RestartPreventExitStatus=78


class EscalationsError(Exception):
    """Base of the domain errors; the CLI prints ``str(exc)`` as one line."""

    exit_code = 1


class ConfigError(EscalationsError):
    """Bad settings (environment, env file or credentials)."""

    exit_code = EX_CONFIG


class MappingError(ConfigError):
    """One or more problems in a mapping file; each problem names file, line and key."""

    def __init__(self, problems: list[MappingProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class MappingProblem:
    """One problem in one mapping file: ``mappings/process.toml:14: levels[2].owner: ...``."""

    __slots__ = ("file", "key", "line", "message")

    def __init__(self, file: Path | str, line: int | None, key: str, message: str) -> None:
        self.file = str(file)
        self.line = line
        self.key = key
        self.message = message

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"

    def __repr__(self) -> str:
        return f"MappingProblem({self!s})"


class WorkflowError(EscalationsError):
    """An event that is not allowed in the escalation's current state."""

    def __init__(
        self, escalation_id: object, state: object, event: str, detail: str | None = None
    ) -> None:
        self.escalation_id = escalation_id
        self.state = state
        self.event = event
        self.detail = detail
        message = f"escalation {escalation_id}: '{event}' is not allowed in state '{state}'"
        super().__init__(f"{message} ({detail})" if detail else message)


class StoreError(EscalationsError):
    """The durable store is unusable (cannot open, migrate, or lock)."""


class LockHeld(StoreError):
    """Another worker holds the store's lock."""


class StoreUnavailable(StoreError):
    """The database server cannot be reached now (it is restarting, failing over, or the
    network is down): a temporary fault. Nothing of a transaction it cut was written. The
    worker waits for the server and runs the pass again; at start, exit 1 (systemd restarts
    the worker)."""


class StoreLoginRefused(ConfigError, StoreError):
    """The database server refused the store's login (the user, the password, the database,
    its ``pg_hba.conf``): a store error that is the admin's to fix, so exit 78 (systemd does
    not restart)."""


class StoreConflict(StoreError):
    """The database rolled a transaction back to resolve a conflict with another session (a
    serialization failure or a deadlock): nothing of it was written, and running it again
    may succeed. The worker runs the pass again, a bounded number of times."""
