"""``escalations rebuild-state``: the store rebuilt from the helpdesk after the state database
is lost (``jobs.rebuild``).

- It runs only into an empty store: over an existing one it stops with one line and exit 73
  (``EX_STORE_EXISTS``), unless ``--force``, which first moves the SQLite file (and its
  ``-wal``/``-shm``) aside to ``<name>.before-rebuild-<UTC time>``; a PostgreSQL store is
  never moved (empty it yourself).
- A rebuild that was interrupted (it marks the store ``rebuild.started`` first and
  ``rebuild.finished`` last) is taken up again by running the command again, without
  ``--force``.
- Progress goes to stderr, one line a step; the summary to stdout. Run it with the worker
  stopped: it takes the store's lock (exit 1 while a worker holds it). Zammad only: with
  another helpdesk it stops with one line, exit 78.
- Exit 0 rebuilt, 73 a store exists, 78 a bad setting or not built for this helpdesk, 1 the
  helpdesk or the store cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from escalations.errors import ConfigError, EscalationsError

if TYPE_CHECKING:
    from escalations.clock import Clock
    from escalations.mappings import Mappings
    from escalations.settings import Settings
    from escalations.store.base import Store
    from jobs.rebuild import Progress, Rebuilt

EX_STORE_EXISTS = 73
"""sysexits.h EX_CANTCREAT: the store to rebuild into already holds a store."""
STARTED = "rebuild.started"
"""Meta key: when a rebuild into this store began (an ISO instant)."""
FINISHED = "rebuild.finished"
"""Meta key: when it finished."""


def unfinished(store: Store) -> str | None:
    """The line that says a rebuild into ``store`` began and never finished (it was
    interrupted: the store holds only part of the escalations), and how to finish it;
    ``None`` for any other store. ``run`` and ``check`` refuse such a store, ``status`` says
    so."""
    started = store.get_meta(STARTED)
    if started is None or store.get_meta(FINISHED) is not None:
        return None
    return _unfinished_line(started)


def _unfinished_line(started: object) -> str:
    return (
        f"the store holds a rebuild begun at {started} that never finished: run "
        "`escalations rebuild-state` again to finish it"
    )


def refuse_unfinished(store: Store) -> None:
    """``ConfigError`` (exit 78) for a store an interrupted rebuild left (``unfinished``)."""
    line = unfinished(store)
    if line is not None:
        raise ConfigError(line)


def unfinished_in(settings: Settings) -> str | None:
    """``unfinished`` for the existing store the settings name, writing nothing: the SQLite
    file read-only (as ``preflight.probe_store`` reads it), or the PostgreSQL store."""
    if settings.database_is_postgresql:
        from escalations.app.wiring import open_configured_store
        from escalations.clock import SystemClock

        store = open_configured_store(settings, SystemClock())
        try:
            return unfinished(store)
        finally:
            store.close()
    import json
    import sqlite3

    database = settings.database_path
    wal, shm = (database.with_name(database.name + end) for end in ("-wal", "-shm"))
    mode = "mode=ro" if wal.exists() and shm.exists() else "immutable=1"
    conn = sqlite3.connect(f"{database.as_uri()}?{mode}", uri=True)
    try:
        rows = dict(
            conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", (STARTED, FINISHED))
        )
    finally:
        conn.close()
    if STARTED not in rows or FINISHED in rows:
        return None
    return _unfinished_line(json.loads(rows[STARTED]))


class StoreExists(EscalationsError):
    exit_code = EX_STORE_EXISTS


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``rebuild-state`` command's arguments (``escalations.app.cli`` calls this)."""
    p = sub.add_parser(
        "rebuild-state",
        help="rebuild the worker's store from the helpdesk after the state database is lost "
        "(Zammad; refuses an existing store, exit 73)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="move an existing SQLite store aside (<file>.before-rebuild-<time>) first",
    )
    p.set_defaults(func=command)


def _progress(line: str) -> None:
    print(f"rebuild-state: {line}", file=sys.stderr, flush=True)  # noqa: T201


def command(args: argparse.Namespace) -> int:
    from escalations.app.logs import configure_logging
    from escalations.clock import SystemClock
    from escalations.mappings import load_mappings
    from escalations.settings import load_settings

    settings = load_settings(args.env_file)
    configure_logging(settings.log_level, settings.log_format)
    mappings = load_mappings(Path(settings.mappings_dir), settings.helpdesk)
    made = run(settings, SystemClock(), mappings, force=args.force, progress=_progress)
    for line in summary(made):
        print(line)  # noqa: T201
    return 0


def _holds_a_store(store: Store) -> bool:
    return bool(store.escalations_in() or store.effects() or store.job_runs(limit=1))


def _move_aside(path: Path, now: datetime) -> Path:
    aside = path.with_name(f"{path.name}.before-rebuild-{now:%Y%m%dT%H%M%SZ}")
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.rename(aside.with_name(aside.name + suffix))
    return aside


def _existing(settings: Settings, clock: Clock, *, force: bool, say: Progress) -> None:
    """Refuse (or with ``force`` move aside) a store that is not empty nor a rebuild's."""
    from escalations.app.preflight import lock_problem
    from escalations.app.wiring import open_configured_store

    if not settings.database_is_postgresql and not settings.database_path.exists():
        return
    held = lock_problem(settings)
    if held is not None:  # a worker runs on it: never moved from under it
        raise EscalationsError(f"rebuild-state: {held}; stop the worker first")
    store = open_configured_store(settings, clock)
    try:
        if not _holds_a_store(store) or (
            store.get_meta(STARTED) is not None and store.get_meta(FINISHED) is None
        ):
            return  # empty, or an interrupted rebuild to go on with
        where = "the database ESCALATIONS_DATABASE_URL names" if settings.database_is_postgresql \
            else str(settings.database_path)  # fmt: skip
        if not force or settings.database_is_postgresql:
            hint = (
                "empty it first" if settings.database_is_postgresql
                else "move it aside, or give --force to have it moved"
            )  # fmt: skip
            raise StoreExists(
                f"rebuild-state: {where} already holds a store; it rebuilds into an empty "
                f"one only ({hint})"
            )
    finally:
        store.close()
    aside = _move_aside(settings.database_path, clock.now().astimezone(UTC))
    say(f"the store that was there is now {aside}")


def run(
    settings: Settings,
    clock: Clock,
    mappings: Mappings,
    *,
    force: bool = False,
    progress: Progress = _progress,
) -> Rebuilt:
    """The command without its argument parsing and printing (tests call this)."""
    from escalations.app.preflight import prepare, session
    from escalations.app.rebuild_shown import shown
    from escalations.app.wiring import build, build_adapter, open_configured_store
    from jobs.rebuild import ADOPTER, rebuild

    say = progress
    if settings.helpdesk != "zammad":
        raise ConfigError(
            f"rebuild-state is not built for {settings.helpdesk}; only for Zammad (docs/report.md)"
        )
    _existing(settings, clock, force=force, say=say)
    prepare(settings, clock)  # every check the worker makes before it starts
    counter = _Counter()
    http = session(settings)
    http.hooks["response"].append(counter.seen)
    adapter = build_adapter(settings, clock, http)
    store = open_configured_store(settings, clock)
    try:
        store.acquire_lock(worker=ADOPTER)
        try:
            installation = build(settings, clock, adapter=adapter, store=store, mappings=mappings)
            with store.transaction() as tx:
                if store.get_meta(STARTED) is None:
                    store.set_meta(tx, STARTED, clock.now().isoformat())
            made = rebuild(installation.ctx, installation.executor.registry, say, shown)
            with store.transaction() as tx:
                store.set_meta(tx, FINISHED, clock.now().isoformat())
        finally:
            store.release_lock()
    finally:
        store.close()
    made.requests = counter.count
    return made


class _Counter:
    """Counts the helpdesk's answers (a ``requests`` response hook: each request sent, a
    retry too; not the waits between them)."""

    def __init__(self) -> None:
        self.count = 0

    def seen(self, response: object, *args: object, **kwargs: object) -> None:
        self.count += 1


def summary(made: Rebuilt) -> list[str]:
    states = ", ".join(f"{n} {state}" for state, n in sorted(made.by_state.items()))
    lines = [
        f"rebuilt {made.escalations} escalations ({states or 'none'}); "
        f"{made.kept} were there from an earlier run; "
        f"{made.found} writes found in the helpdesk, {made.adopted} idempotent writes taken "
        f"as done; {made.requests if made.requests is not None else '?'} helpdesk requests",
    ]
    if made.left:
        lines.append(f"{len(made.left)} writes the helpdesk does not show are left for the worker:")
        lines.extend(f"  {ref}" for ref in made.left)
    lines.extend(f"  not rebuilt: {why}" for why in made.skipped)
    return lines
