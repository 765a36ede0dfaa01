"""What ``escalations run`` checks before it starts, shared with ``escalations check`` so the
two cannot disagree: the helpdesk URL and token (built into an adapter, no request made),
the CA bundle, every directory the worker writes (creatable and writable, named with the
setting that moves it), the store's lock, and the store file itself (opened read-only: a
corrupt file or a schema newer than the code is refused before anything is migrated).

``run`` creates the directories it is missing (``prepare``); ``check`` leaves nothing
behind (``inspect``): it is often run as root before the first start, and a directory it made
would belong to root, not to the service's ``DynamicUser=`` (systemd makes
``StateDirectory=`` itself, owned by that user). So a missing directory is reported as "would
be created at first start" once its nearest existing parent takes a scratch directory
(removed at once: the kernel decides, as it will for ``run``, where root is refused too, in
``/sys`` or on a read-only mount); an existing one is proved writable with a scratch file,
removed at once; the store is read with SQLite's read-only (or, without a write-ahead log,
immutable) open, which writes no ``-wal``/``-shm``.

A problem here is the admin's to fix, so it is a ``ConfigError`` (exit 78: systemd's
``RestartPreventExitStatus=78`` keeps it from restarting in a loop); the lock held by a
running worker is a ``LockHeld`` (exit 1).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from connector.errors import SetupError
from connector.http import build_session
from escalations.clock import Clock
from escalations.errors import ConfigError
from escalations.settings import Settings
from escalations.store.sqlite import load_migrations, probe_lock

if TYPE_CHECKING:
    import requests

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
        # a PostgreSQL store has no directory here (``probe_postgres`` checks it instead)
        *(
            []
            if settings.database_is_postgresql
            else [Place(store, settings.database_path.parent, "store directory")]
        ),
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
    _prove_writable(place)


def inspect(place: Place) -> str:
    """``ensure_writable`` leaving nothing behind: ``"writable"`` for an existing directory
    (a scratch file proves it, removed at once), ``"would be created at first start"`` for a
    missing one whose nearest existing parent takes a new directory (a scratch one, removed
    at once); else the ``ConfigError`` ``run`` would raise, with the same words."""
    path = place.path
    if path.exists():
        if not path.is_dir():
            raise _refused(place, f"cannot create the {place.what}: {os.strerror(errno.EEXIST)}")
        _prove_writable(place)
        return "writable"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise _refused(place, f"cannot create the {place.what}: {os.strerror(errno.ENOTDIR)}")
    try:  # the kernel's answer (root is refused in /sys, /proc), not a guess from the mode
        Path(tempfile.mkdtemp(prefix=".create-check-", dir=parent)).rmdir()
    except OSError as exc:
        raise _refused(place, f"cannot create the {place.what}: {exc.strerror or exc}") from None
    return "would be created at first start"


def _prove_writable(place: Place) -> None:
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


def probe_store(settings: Settings) -> int | None:
    """Open an existing SQLite store read-only and return its schema version (``None``: no
    store yet). Writes nothing: with a write-ahead log present (a worker stopped without
    its checkpoint) the read-only open uses it; without one the file is opened immutable,
    so no ``-wal``/``-shm`` file appears.

    Raises:
        ConfigError: the file is not a usable SQLite database, or its schema is newer than
            this code (a downgrade): a restart cannot fix either.
    """
    database = settings.database_path
    if not database.is_file():
        return None
    setting = places(settings)[0].setting
    wal = database.with_name(database.name + "-wal")
    shm = database.with_name(database.name + "-shm")
    mode = "mode=ro" if wal.exists() and shm.exists() else "immutable=1"
    try:
        conn = sqlite3.connect(f"{database.as_uri()}?{mode}", uri=True)
    except sqlite3.Error as exc:
        raise _unusable(setting, database, str(exc)) from None
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        verdict = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.Error as exc:
        raise _unusable(setting, database, str(exc)) from None
    finally:
        conn.close()
    if verdict != "ok":
        raise _unusable(setting, database, f"integrity check: {verdict}")
    latest = len(load_migrations())
    if version > latest:
        raise ConfigError(
            f"{setting}: {database}: database schema version {version} is newer than this "
            f"code understands ({latest}); upgrade helpdesk-escalations or restore a backup"
        )
    return version


def probe_postgres(settings: Settings) -> int | None:
    """Connect to the PostgreSQL store, writing nothing, and return its schema version
    (``None``: not created yet; the worker migrates it at start).

    Raises:
        ConfigError: the server refuses the login or the database, or its schema is newer
            than this code (one line, without the password): exit 78.
        StoreUnavailable: the server cannot be reached: temporary, exit 1, so systemd
            starts the worker again.
    """
    from escalations.errors import StoreError, StoreUnavailable
    from escalations.store.postgres import probe_schema

    try:
        return probe_schema(settings.database_url)
    except StoreUnavailable:
        raise
    except StoreError as exc:
        raise ConfigError(f"ESCALATIONS_DATABASE_URL: {exc}") from None


def _unusable(setting: str, database: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"{setting}: {database}: not a usable store ({problem}); restore a backup, or set "
        f"{setting} elsewhere"
    )


def session(settings: Settings) -> requests.Session:
    """The adapter's HTTP session, with the proxy of ``ESCALATIONS_HTTPS_PROXY`` (and, as
    every session ``connector.http`` builds, nothing taken from the environment).

    Raises:
        ConfigError: the proxy URL or the CA bundle is refused.
    """
    from escalations.app.wiring import http_policy

    policy = http_policy(settings)
    if settings.https_proxy:
        try:
            policy = dataclasses.replace(policy, proxy=settings.https_proxy)
        except SetupError as exc:
            raise ConfigError(f"ESCALATIONS_HTTPS_PROXY: {exc}") from None
    return build_session(policy)


def ensure_fits_watchdog(settings: Settings, watchdog: float | None) -> None:
    """One helpdesk attempt (connect + read timeout) must end inside half the watchdog
    interval (``WatchdogSec=``): the worker pings between attempts, never during one, so a
    longer attempt would get a healthy worker killed. ``watchdog``: seconds, ``None`` when
    there is no watchdog.

    Raises:
        ConfigError: the timeouts do not fit.
    """
    if watchdog is None:
        return
    attempt = settings.http_connect_timeout + settings.http_read_timeout
    if attempt >= watchdog / 2:
        raise ConfigError(
            f"ESCALATIONS_HTTP_READ_TIMEOUT: connect + read timeout ({attempt:g} s) must be "
            f"under half the watchdog interval ({watchdog / 2:g} s of WatchdogSec="
            f"{watchdog:g}s): lower ESCALATIONS_HTTP_READ_TIMEOUT or "
            "ESCALATIONS_HTTP_CONNECT_TIMEOUT, or raise WatchdogSec= in a drop-in"
        )


def prepare(
    settings: Settings,
    clock: Clock,
    *,
    progress: Callable[[], None] | None = None,
    watchdog: float | None = None,
    on_response: Callable[..., None] | None = None,
) -> HelpdeskAdapter:
    """Every offline check ``run`` makes, in its order, creating the missing directories;
    the adapter for the helpdesk. ``watchdog``: systemd's watchdog interval in seconds
    (``ensure_fits_watchdog``); ``on_response``: a ``requests`` response hook on the
    adapter's session (called once per answer the helpdesk gave: a command's request
    count)."""
    from escalations.app.wiring import build_adapter

    http = session(settings)
    if on_response is not None:
        http.hooks["response"].append(on_response)
    adapter = build_adapter(settings, clock, http, progress=progress)
    ensure_fits_watchdog(settings, watchdog)
    for place in places(settings):
        ensure_writable(place)
    if settings.database_is_postgresql:
        probe_postgres(settings)
        return adapter
    ensure_store_file(settings)
    if lock_problem(settings) is None:  # a running worker's store is its own to judge
        probe_store(settings)
    return adapter


@dataclass(frozen=True)
class Inspection:
    """What ``check`` found, creating nothing: per directory ``"writable"`` or ``"would be
    created at first start"``; the store's schema version (``None``: no store yet)."""

    places: list[tuple[Place, str]]
    schema: int | None


def inspect_all(
    settings: Settings, clock: Clock, *, watchdog: float | None = None
) -> tuple[HelpdeskAdapter, Inspection]:
    """``prepare``'s checks with ``inspect`` for the directories: nothing is created."""
    from escalations.app.wiring import build_adapter

    adapter = build_adapter(settings, clock, session(settings))
    ensure_fits_watchdog(settings, watchdog)
    found = [(place, inspect(place)) for place in places(settings)]
    if settings.database_is_postgresql:
        return adapter, Inspection(found, probe_postgres(settings))
    ensure_store_file(settings)
    schema = probe_store(settings) if lock_problem(settings) is None else None
    return adapter, Inspection(found, schema)


def lock_problem(settings: Settings) -> str | None:
    """Why ``run`` would be refused the store's lock now, or ``None`` (always on PostgreSQL:
    the store is shared, there is no lock to be refused)."""
    if settings.database_is_postgresql:
        return None
    return probe_lock(settings.database_path)
