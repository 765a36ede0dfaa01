"""What ``escalations run`` checks before it starts, shared with ``escalations check`` so the
two cannot disagree: the helpdesk URL and token (built into an adapter, no request made),
the CA bundle, every directory the worker writes (creatable and writable, named with the
setting that moves it), and the store's lock.

A problem here is the admin's to fix, so it is a ``ConfigError`` (exit 78: systemd's
``RestartPreventExitStatus=78`` keeps it from restarting in a loop); the lock held by a
running worker is a ``LockHeld`` (exit 1).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from escalations.clock import Clock
from escalations.errors import ConfigError
from escalations.settings import Settings
from escalations.store.sqlite import probe_lock

if TYPE_CHECKING:
    from connector.base import HelpdeskAdapter

STATE_DIR = "ESCALATIONS_STATE_DIR"


@dataclass(frozen=True)
class Place:
    """A directory the worker writes, and the setting that moves it."""

    setting: str
    path: Path
    what: str


def places(settings: Settings) -> list[Place]:
    store = "ESCALATIONS_DATABASE_URL" if settings.database_url else STATE_DIR
    archive = "ESCALATIONS_ARCHIVE_DIR" if settings.archive_dir else STATE_DIR
    reports = "ESCALATIONS_REPORTS_DIR" if settings.reports_dir else STATE_DIR
    return [
        Place(store, settings.database_path.parent, "store directory"),
        Place(archive, settings.archive_path, "archive directory"),
        Place(reports, settings.reports_path, "reports directory"),
    ]


def _refused(place: Place, problem: str) -> ConfigError:
    return ConfigError(
        f"{place.setting}: {place.path}: {problem} (set {place.setting} to a directory this "
        "user may write)"
    )


def ensure_writable(place: Place) -> None:
    """Create the directory (0700) if missing and prove it writable with a scratch file."""
    try:
        place.path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise _refused(place, f"cannot create the {place.what}: {exc.strerror or exc}") from None
    try:
        fd, scratch = tempfile.mkstemp(prefix=".write-check-", dir=place.path)
    except OSError as exc:
        raise _refused(place, f"the {place.what} is not writable: {exc.strerror or exc}") from None
    os.close(fd)
    Path(scratch).unlink()


def ensure_store_file(settings: Settings) -> None:
    """An existing database file (and its WAL) must be readable and writable."""
    database = settings.database_path
    setting = places(settings)[0].setting
    for path in (database, database.with_name(database.name + "-wal")):
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError(
                f"{setting}: {path}: the store file is not readable and writable by this user "
                f"(fix its owner or mode, or set {setting})"
            )


def prepare(
    settings: Settings, clock: Clock, *, progress: Callable[[], None] | None = None
) -> HelpdeskAdapter:
    """Every offline check ``run`` makes, in its order; the adapter for the helpdesk."""
    from escalations.app.wiring import build_adapter

    adapter = build_adapter(settings, clock, progress=progress)
    for place in places(settings):
        ensure_writable(place)
    ensure_store_file(settings)
    return adapter


def lock_problem(settings: Settings) -> str | None:
    """Why ``run`` would be refused the store's lock now, or ``None``."""
    return probe_lock(settings.database_path)
