"""What each ``escalations`` command does; ``cli.py`` only parses arguments and maps errors."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from escalations.app.logs import configure_logging, error_line
from escalations.clock import Clock, FixedStartClock, SystemClock, parse_instant
from escalations.errors import ConfigError, EscalationsError
from escalations.faults import faults_from_env
from escalations.mappings import Mappings, load_mappings
from escalations.models import ACTIVE_STATES, ArchiveCopy, Effect, EffectState, State
from escalations.settings import Settings, load_settings

if TYPE_CHECKING:
    from escalations.app.systemd import Notifier
    from escalations.store.base import StatusSummary, Store, WorkerBeat
    from jobs.worker import Worker

log = logging.getLogger(__name__)

FAILED_SHOWN = 10
"""How many failed effects ``escalations status`` lists, newest last."""


def _out(line: str = "") -> None:
    print(line)  # noqa: T201


def _emit(lines: list[str]) -> None:
    """Write ``lines`` to stdout and flush. A reader that has gone (``| head -1``) ends the
    output quietly, not the command: its exit code still says what it found."""
    try:
        for line in lines:
            print(line)  # noqa: T201
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit's flush does not fail again
        os.close(devnull)


def _err(line: str) -> None:
    """A problem the admin should see, in the CLI's ``escalations: ...`` form on stderr."""
    print(error_line(line), file=sys.stderr)  # noqa: T201


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.env_file)
    configure_logging(settings.log_level, getattr(settings, "log_format", "text"))
    return settings


def _mappings(settings: Settings) -> Mappings:
    return load_mappings(Path(settings.mappings_dir), settings.helpdesk)


def _open_store(settings: Settings, clock: Clock) -> Store:
    """The store ``ESCALATIONS_DATABASE_URL`` names (``wiring.open_configured_store``), or a
    ``ConfigError`` when its directory cannot be made or opened (a permission, a read-only
    file system), or its PostgreSQL server refuses the login: the admin has to fix the
    setting. A PostgreSQL server that cannot be reached is ``StoreUnavailable`` (exit 1:
    temporary, systemd starts the worker again)."""
    import sqlite3

    from escalations.app.preflight import places
    from escalations.app.wiring import open_configured_store

    if settings.database_is_postgresql:
        from escalations.errors import StoreError, StoreUnavailable

        try:
            return open_configured_store(settings, clock)
        except StoreUnavailable:
            raise
        except StoreError as exc:  # its message never holds the password
            raise ConfigError(f"ESCALATIONS_DATABASE_URL: {exc}") from None
    setting = places(settings)[0].setting
    try:
        return open_configured_store(settings, clock)
    except (OSError, sqlite3.Error) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"{setting}: {settings.database_path}: cannot open the store: {problem} "
            f"(fix its owner or mode, or set {setting})"
        ) from None


def _store_name(settings: Settings) -> str:
    """The store as shown to the admin: the SQLite file, or the PostgreSQL URL without its
    password."""
    if settings.database_is_postgresql:
        from escalations.store.postgres import redacted_url

        return redacted_url(settings.database_url)
    return str(settings.database_path)


def _store_exists(settings: Settings) -> bool:
    """There is a store to read (the worker has run): the SQLite file, or a PostgreSQL
    database with the store's tables. Creates nothing."""
    if settings.database_is_postgresql:
        from escalations.app.preflight import probe_postgres

        return probe_postgres(settings) is not None
    return settings.database_path.exists()


def _display_tz(settings: Settings) -> tzinfo:
    """The process time zone for times shown to the admin (UTC if the mappings are bad)."""
    try:
        return _mappings(settings).profile.tz
    except ConfigError:
        return UTC


# -- check ----------------------------------------------------------------------------------


def check(args: argparse.Namespace) -> int:
    """Every check ``run`` makes before it starts (``preflight``), without starting and
    without creating anything (a missing directory "would be created at first start"): exit
    0 when ``run`` would start, 78 when a setting, a mapping or the store file must change, 1
    when another worker holds the store or its PostgreSQL server cannot be reached."""
    from escalations.app.preflight import inspect_all, lock_problem
    from escalations.app.rebuild_command import unfinished_in
    from escalations.app.systemd import watchdog_seconds
    from escalations.app.webhook import require_secret
    from escalations.errors import EX_CONFIG

    settings = _settings(args)
    require_secret(settings)
    mappings = _mappings(settings)
    if settings.helpdesk == "zammad":  # what provision reads: checked with the rest
        from escalations.bindings.zammad.provision_spec import PROVISION_FILE, ProvisionSpec
        from escalations.mappings import load_mapping_file

        load_mapping_file(mappings.directory / PROVISION_FILE, ProvisionSpec)
    profile = mappings.profile
    _out(
        f"mappings: ok ({mappings.directory}: {profile.max_level} levels, "
        f"{len(profile.reasons)} reasons, {len(profile.segments)} segments, "
        f"time zone {profile.process.time_zone})"
    )
    adapter, found = inspect_all(settings, SystemClock(), watchdog=watchdog_seconds(os.environ))
    _out(f"settings: ok ({settings.helpdesk} at {settings.helpdesk_url})")
    where = ", ".join(f"{p.what.split()[0]} {p.path}: {verdict}" for p, verdict in found.places)
    _out(f"state: ok ({where})")
    held = lock_problem(settings)
    if held is not None:
        _err(f"store: {held}; `escalations run` would be refused while it runs")
        return 1
    rebuilding = unfinished_in(settings) if found.schema is not None else None
    if rebuilding is not None:
        _err(f"store: {rebuilding}; `escalations run` would be refused")
        return EX_CONFIG
    store = f"schema {found.schema}, readable" if found.schema is not None else "none yet"
    if settings.database_is_postgresql:  # shared: other workers may run on it
        _out(f"store: ok ({_store_name(settings)}: {store}; PostgreSQL, shared by the workers)")
    else:
        _out(f"store: ok ({settings.database_path}: {store}; no other worker holds it)")
    if not args.live:
        return 0
    from escalations.app.live import live

    return live(
        settings,
        adapter,
        mappings,
        SystemClock(),
        allow_unverified=getattr(args, "allow_unverified", False),
        out=_out,
        err=_err,
    )


# -- run ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from escalations.app.preflight import prepare
    from escalations.app.rebuild_command import refuse_unfinished
    from escalations.app.systemd import Notifier, watchdog_seconds
    from escalations.app.version import package_version
    from escalations.app.webhook import WebhookServer, require_secret
    from escalations.app.wiring import build
    from escalations.effects.executor import new_worker_id
    from escalations.settings import listen_address

    settings = _settings(args)
    if args.at and not args.once:
        raise ConfigError("--at needs --once (a single pass as of that instant)")
    listen_source = None  # the setting
    if args.webhook is not None:
        listen_source = "--webhook"
        try:
            settings = settings.model_copy(update={"webhook_listen": listen_address(args.webhook)})
        except ValueError as exc:
            raise ConfigError(f"--webhook: {exc}") from None
    require_secret(settings, source=listen_source)
    base: Clock = SystemClock()
    if args.at:
        try:
            base = FixedStartClock(parse_instant(args.at))
        except ValueError:
            raise ConfigError(
                f"--at: '{args.at}' is not an instant with a time zone "
                "(ISO-8601, e.g. 2026-12-01T09:30:00Z)"
            ) from None
    stop = threading.Event()
    clock = StoppingClock(base, stop)  # every wait of the helpdesk client ends on a stop
    mappings = _mappings(settings)
    notifier = Notifier()
    adapter = prepare(
        settings, clock, progress=notifier.alive, watchdog=watchdog_seconds(os.environ)
    )
    store = _open_store(settings, clock)
    listener: WebhookServer | None = None
    try:
        worker_id = new_worker_id()
        store.acquire_lock(worker=worker_id)
        refuse_unfinished(store)  # an interrupted rebuild-state: finish it first
        installation = build(
            settings,
            clock,
            adapter=adapter,
            store=store,
            mappings=mappings,
            faults=faults_from_env(os.environ),
            stop=stop,
            worker_id=worker_id,
        )
        worker = installation.worker(liveness=notifier)
        worker.version = package_version()  # shown by status, from the worker's heartbeat
        if settings.webhook_listen and not args.once:  # a single pass has nothing to wake
            worker.wake = threading.Event()
            listener = WebhookServer.from_settings(settings, worker.wake, source=listen_source)
            listener.start()
        grace = _StopGrace()
        _install_stop_handlers(stop, grace, notifier)
        # settings, mappings, migrations and the lock are done; the helpdesk is not waited
        # for (when it is down, the status line says so)
        notifier.ready(f"started · worker {worker_id}")
        try:
            with grace:
                if args.once:
                    results = worker.run_once()
                    _release_leadership(worker)  # on a shared store the next worker leads at once
                    return 0 if all(r is not None for r in results) else 1
                worker.run_forever()
        except StopNow:
            log.warning(
                "worker.stop_forced after=%ss: a helpdesk call was still running and was "
                "abandoned; a write it was making is looked for by its marker at the next start",
                STOP_GRACE_SECONDS,
            )
            _release_leadership(worker)  # run_forever's own release was skipped
        return 0
    finally:
        if listener is not None:
            listener.close()
        store.release_lock()
        store.close()
        notifier.close()


class StoppingClock:
    """The worker's clock (``SystemClock``, or ``FixedStartClock`` for ``--at``) with its
    ``sleep`` waiting on the stop event, so a SIGTERM ends any wait at once. The helpdesk
    client sees ``stop`` (``connector.http.StoppingClock``) and makes no further attempt
    once it is set."""

    def __init__(self, base: Clock, stop: threading.Event) -> None:
        self.base = base
        self.stop = stop

    def now(self) -> datetime:
        return self.base.now()

    def monotonic(self) -> float:
        return self.base.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.stop.wait(seconds)


def _release_leadership(worker: Worker) -> None:
    """Give up the jobs' leases after a forced stop, so a standby takes over at once. The
    abandoned pass may have left the store mid-transaction: a failure here is logged, the
    leases then expire on their own (``LEADER_LEASE_RUNS`` intervals)."""
    try:
        worker.release_leadership()
    except (EscalationsError, sqlite3.Error) as exc:
        log.warning("worker.leases_kept error=%s: they expire on their own", exc)


STOP_GRACE_SECONDS = 5.0
"""After SIGTERM, how long a helpdesk call (its read timeout, its retries) may go on before
it is abandoned, so the worker exits well inside systemd's stop timeout."""


class StopNow(BaseException):
    """The stop's grace ran out while the worker was still in a pass."""


class _StopGrace:
    """Inside ``with``: a stop signal arms a timer that abandons the pass after the grace.
    Outside (clean-up: the lock, the store), the timer does nothing."""

    def __init__(self) -> None:
        self.active = False

    def __enter__(self) -> _StopGrace:
        self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False
        signal.setitimer(signal.ITIMER_REAL, 0)

    def arm(self) -> None:
        def abandon(signum: int, frame: FrameType | None) -> None:
            if self.active:
                self.active = False
                raise StopNow

        signal.signal(signal.SIGALRM, abandon)
        signal.setitimer(signal.ITIMER_REAL, STOP_GRACE_SECONDS)


def _install_stop_handlers(
    stop: threading.Event, grace: _StopGrace | None = None, notifier: Notifier | None = None
) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            if notifier is not None:
                notifier.stopping()
            log.info("worker.stopping signal=%s", signal.Signals(signum).name)
            if grace is not None:
                grace.arm()
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# -- diagnostics ----------------------------------------------------------------------------


def diagnostics(args: argparse.Namespace) -> int:
    from escalations.app.diagnostics import bundle, render_text

    data = bundle(args.env_file, dict(os.environ))
    if args.json:
        _out(json.dumps(data, indent=2))
    else:
        for line in render_text(data):
            _out(line)
    return 0


# -- status ---------------------------------------------------------------------------------


STALE_AFTER_POLLS = 3
"""``status`` says degraded when the last successful poll is older than this many intervals."""
DOWN_AFTER_POLLS = 20
"""… and down past this many (10 minutes at the default 30 s), or with none at all."""


def _health(summary: StatusSummary | None, settings: Settings, now: datetime) -> tuple[int, str]:
    """(exit code, words): 0 healthy, 1 degraded (failed effects, polls late), 2 down."""
    if summary is None or summary.last_successful_poll is None:
        return 2, "down: no successful poll yet"
    interval = settings.poll_interval_seconds
    age = max((now - summary.last_successful_poll).total_seconds(), 0.0)
    if age > DOWN_AFTER_POLLS * interval:
        return 2, f"down: the last successful poll was {age:.0f} s ago"
    problems = []
    if age > STALE_AFTER_POLLS * interval:
        problems.append(f"the last successful poll was {age:.0f} s ago")
    failed = summary.effects.get(EffectState.FAILED, 0)
    if failed:
        problems.append(f"{failed} failed effect{'s' if failed != 1 else ''}")
    return (1, "degraded: " + "; ".join(problems)) if problems else (0, "healthy")


def status(args: argparse.Namespace) -> int:
    """The store's state and a health verdict; the exit code is the verdict (0 healthy, 1
    degraded, 2 down: Nagios' OK, WARNING, CRITICAL), also when the reader of stdout has
    gone (``status | head -1``). A PostgreSQL store that cannot be reached is "down" (2)."""
    from escalations.errors import StoreError, StoreUnavailable

    settings = _settings(args)
    as_json = bool(getattr(args, "json", False))
    try:
        return _status(settings, as_json)
    except StoreError as exc:
        # unreachable, or one the worker refuses as well (a newer schema, a corrupt file):
        # the worker is down either way, and a monitoring check must say so
        what = "cannot be reached" if isinstance(exc, StoreUnavailable) else "is refused"
        health = f"down: the store {what} ({exc})"
        if as_json:
            _emit([json.dumps(_status_json(settings, None, [], 2, health))])
        else:
            _emit([f"store: {_store_name(settings)} {what}", f"health: {health}"])
        return 2


def _status(settings: Settings, as_json: bool) -> int:
    from escalations.app.rebuild_command import unfinished

    clock = SystemClock()
    if not _store_exists(settings):
        code, health = _health(None, settings, clock.now())
        if as_json:
            _emit([json.dumps(_status_json(settings, None, [], code, health))])
            return code
        _emit(
            [
                f"store: {_store_name(settings)} does not exist yet (the worker has not run)",
                f"health: {health}",
            ]
        )
        return code
    store = _open_store(settings, clock)
    try:
        summary = store.status(clock.now())
        failed = store.effects(EffectState.FAILED)
        tz = _display_tz(settings)
        duty_lines = _duty_lines(store, clock.now(), tz)
        workers = store.workers()
        rebuilding = unfinished(store)
    finally:
        store.close()
    code, health = _health(summary, settings, clock.now())
    if as_json:
        data = _status_json(settings, summary, failed, code, health)
        data["workers"] = [_worker_json(w, settings, clock.now()) for w in workers]
        data["rebuild_unfinished"] = rebuilding
        _emit([json.dumps(data)])
        return code
    lines: list[str] = []  # collected, then written at once (``_emit``)
    lines.append(f"store: {_store_name(settings)} (schema {summary.schema_version})")
    if rebuilding is not None:
        lines.append(f"rebuild: {rebuilding}; the worker refuses to run until then")
    if summary.escalations:
        lines.append("open escalations:")
        rows = sorted(summary.escalations.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        for (state, level), count in rows:
            lines.append(f"  level {level}  {state:<10} {count}")
    else:
        lines.append("open escalations: none")
    lines.append(f"duties due: {summary.duties_due}, missed: {summary.duties_missed}")
    lines.extend(duty_lines)
    effects = summary.effects
    lines.append("effects: " + ", ".join(f"{s.value} {effects.get(s, 0)}" for s in EffectState))
    for effect in failed[-FAILED_SHOWN:]:
        ticket = effect.payload.get("ticket_id") or effect.payload.get("parent_id")
        lines.append(f"  failed {effect.kind} {effect.key} (ticket {ticket}): {effect.last_error}")
    if len(failed) > FAILED_SHOWN:
        lines.append(f"  … and {len(failed) - FAILED_SHOWN} more failed effects")
    last = summary.last_successful_poll
    shown = last.astimezone(tz).isoformat(timespec="seconds") if last else "never"
    lines.append(f"last successful poll: {shown}")
    lines.extend(_worker_lines(workers, settings, clock.now(), tz))
    if summary.last_errors:
        lines.append("last errors:")
        for run in summary.last_errors:
            when = run.started_at.astimezone(tz).isoformat(timespec="seconds")
            lines.append(f"  {when} {run.job}: {run.error}")
    lines.append(f"health: {health}")
    _emit(lines)
    return code


def _silent(worker: WorkerBeat, settings: Settings, now: datetime) -> bool:
    """No heartbeat for ``STALE_AFTER_POLLS`` poll intervals (a worker that died, or is
    stopped or cut off from the store)."""
    age = (now - worker.heartbeat_at).total_seconds()
    return age > STALE_AFTER_POLLS * settings.poll_interval_seconds


def _worker_lines(
    workers: list[WorkerBeat], settings: Settings, now: datetime, tz: tzinfo
) -> list[str]:
    """The workers on the store, from their heartbeats (``jobs.worker``); nothing when none
    is running (a single ``run --once`` leaves none)."""
    if not workers:
        return []
    lines = ["workers:"]
    for w in workers:
        beat = w.heartbeat_at.astimezone(tz).isoformat(timespec="seconds")
        age = max((now - w.heartbeat_at).total_seconds(), 0.0)
        silent = ", silent" if _silent(w, settings, now) else ""
        lines.append(
            f"  {w.host} pid {w.pid} {w.role} {w.version or '-'} "
            f"last heartbeat {beat} ({age:.0f} s ago{silent})"
        )
    return lines


def _worker_json(worker: WorkerBeat, settings: Settings, now: datetime) -> dict[str, object]:
    return {
        "id": worker.id,
        "host": worker.host,
        "pid": worker.pid,
        "role": worker.role,
        "version": worker.version,
        "started_at": worker.started_at.isoformat(),
        "last_heartbeat": worker.heartbeat_at.isoformat(),
        "silent": _silent(worker, settings, now),
    }


def _status_json(
    settings: Settings,
    summary: StatusSummary | None,
    failed: list[Effect],
    code: int,
    health: str,
) -> dict[str, object]:
    """``status --json``: schema ``helpdesk-escalations/status`` version 1 (README)."""
    last = summary.last_successful_poll if summary else None
    return {
        "schema": "helpdesk-escalations/status",
        "version": 1,
        "store": _store_name(settings),
        "store_schema": summary.schema_version if summary else None,
        "health": {"code": code, "status": health.split(":", 1)[0], "detail": health},
        "escalations": [
            {"state": state.value, "level": level, "count": count}
            for (state, level), count in sorted(
                (summary.escalations if summary else {}).items(),
                key=lambda kv: (kv[0][1], kv[0][0]),
            )
        ],
        "duties": {
            "due": summary.duties_due if summary else 0,
            "missed": summary.duties_missed if summary else 0,
        },
        "effects": {s.value: (summary.effects.get(s, 0) if summary else 0) for s in EffectState},
        "failed_effects": [
            {"id": e.id, "kind": e.kind, "key": e.key, "error": e.last_error}
            for e in failed[-FAILED_SHOWN:]
        ],
        "last_successful_poll": last.isoformat() if last else None,
        "last_errors": [
            {"job": r.job, "at": r.started_at.isoformat(), "error": r.error}
            for r in (summary.last_errors if summary else ())
        ],
        "workers": [],  # filled in by status when there is a store
    }


DUTIES_SHOWN = 10
"""Duties listed per escalation by ``status``."""


def _duty_lines(store: Store, now: datetime, tz: tzinfo) -> list[str]:
    """Per active escalation: its duties due today (local) not done yet, and those missed."""
    today = now.astimezone(tz).date()
    lines: list[str] = []
    for esc in store.escalations_in(*ACTIVE_STATES):
        shown = [
            d
            for d in store.duties(esc.id)
            if d.missed_at is not None
            or (d.done_at is None and d.due_at.astimezone(tz).date() == today)
        ]
        if not shown:
            continue
        number = esc.escalation_ticket_number or esc.original_ticket_number or "?"
        lines.append(f"  escalation #{number} (level {esc.level}, {esc.segment}):")
        for d in shown[:DUTIES_SHOWN]:
            due = d.due_at.astimezone(tz).strftime("%a %d %b %H:%M")
            what = "MISSED" if d.missed_at is not None else ("due" if d.due_at >= now else "late")
            lines.append(f"    {what:<6} {d.reason or d.slot} by {due}")
        if len(shown) > DUTIES_SHOWN:
            lines.append(f"    … and {len(shown) - DUTIES_SHOWN} more")
    return lines


# -- effects: an admin's replay ------------------------------------------------------------


def effects_list(args: argparse.Namespace) -> int:
    """One line per effect (only the failed ones with ``--failed``), the newest change last."""
    settings = _settings(args)
    states = (EffectState.FAILED,) if args.failed else ()
    effects: list[Effect] = []
    if _store_exists(settings):  # no store yet: nothing to list, and none is made
        store = _open_store(settings, SystemClock())
        try:
            effects = store.effects(*states)
        finally:
            store.close()
    if not effects:
        _out("no failed effects" if args.failed else "no effects")
        return 0
    tz = _display_tz(settings)
    for effect in sorted(effects, key=lambda e: (e.updated_at, e.id)):
        _out(_effect_line(effect, tz))
    return 0


def _effect_line(effect: Effect, tz: tzinfo) -> str:
    updated = effect.updated_at.astimezone(tz).isoformat(timespec="seconds")
    escalation = effect.escalation_id if effect.escalation_id is not None else "-"
    error = " ".join((effect.last_error or "-").split())  # one line, whatever the helpdesk said
    return (
        f"{effect.id} {effect.kind} {effect.state.value} attempts={effect.attempts} "
        f"escalation={escalation} updated={updated} error={error}"
    )


def effects_retry(args: argparse.Namespace) -> int:
    """Put failed effects back in the queue. Nothing is written to the helpdesk here: the
    worker's next pass runs them like any other pending effect. Exit 1 if any id named was
    not retried."""
    settings = _settings(args)
    clock = SystemClock()
    if not _store_exists(settings):
        if args.all_failed:
            _out("no failed effects")
            return 0
        for effect_id in args.ids:
            _err(f"effect {effect_id}: not retried: no such effect (the worker has not run)")
        return 1
    store = _open_store(settings, clock)
    try:
        if args.all_failed:
            ids = [effect.id for effect in store.effects(EffectState.FAILED)]
            if not ids:
                _out("no failed effects")
                return 0
        else:
            ids = list(dict.fromkeys(args.ids))  # each once, in the order given
        missed = 0
        for effect_id in ids:
            with store.transaction() as tx:
                effect = store.get_effect(effect_id)
                refusal = _why_not_retried(store, effect)
                if refusal is None and not store.retry_failed(tx, effect_id, at=clock.now()):
                    refusal = "it changed meanwhile"  # a worker or another admin got there first
            if effect is not None and refusal is None:
                _out(f"effect {effect_id}: {effect.kind} queued for the worker's next pass")
            else:
                missed += 1
                _err(f"effect {effect_id}: not retried: {refusal}")
    finally:
        store.close()
    return 1 if missed else 0


def _why_not_retried(store: Store, effect: Effect | None) -> str | None:
    """Why replaying ``effect`` would be wrong, or None if it may be queued again."""
    from escalations.effects.helpdesk import CREATE_ESCALATION

    if effect is None:
        return "no such effect"
    if effect.state is not EffectState.FAILED:
        return f"it is {effect.state.value}, not failed"
    if effect.kind == CREATE_ESCALATION and effect.escalation_id is not None:
        # A refused create ended its escalation before it began (and cleared the flag);
        # creating the ticket now would leave it belonging to no open escalation.
        esc = store.get_escalation(effect.escalation_id)
        if esc is None or esc.state is not State.FLAGGED:
            state = esc.state.value if esc is not None else "gone"
            return (
                f"its escalation {effect.escalation_id} has ended ({state}) since the ticket "
                "was refused; flag the original ticket again to raise a new escalation"
            )
    return None


# -- sandbox and demo -----------------------------------------------------------------------


def sandbox(args: argparse.Namespace) -> int:
    from escalations.app.demo import serve_sandbox

    configure_logging("INFO")
    return serve_sandbox(port=args.port, seed=args.seed)


def demo(args: argparse.Namespace) -> int:
    from escalations.app.demo import run_demo

    return run_demo(state_dir=args.state_dir)


# -- archive ----------------------------------------------------------------------------------


def archive_verify(args: argparse.Namespace) -> int:
    """Every hard copy (of one escalation with ``--escalation``) checked against its
    manifest: one line per copy, one per problem. Exit 1 if any differs."""
    from escalations.archive.directory import verify

    copies = _archive_copies(args, args.escalation)
    if copies is None:
        return 1
    bad = 0
    for copy in copies:
        if copy.purged_at is not None:
            _out(f"purged {copy.path} ({copy.purge_reason or 'retention'})")
            continue
        problems = verify(Path(copy.path))
        if problems:
            bad += 1
            for problem in problems:
                _err(f"damaged: {problem}")
        else:
            _out(f"ok {copy.path}")
    if not copies:
        _out("no hard copies yet")
    return 1 if bad else 0


def archive_show(args: argparse.Namespace) -> int:
    """Where an escalation's hard copies are and what each holds (from its manifest)."""
    import json

    copies = _archive_copies(args, args.key)
    if copies is None:
        return 1
    if not copies:
        _err(f"escalation {args.key}: no hard copy yet (it is archived once closed)")
        return 1
    for copy in copies:
        state = "purged" if copy.purged_at else "kept"
        _out(
            f"{copy.path} ({state}; closed {copy.closed_at.isoformat()}, manifest sha256 "
            f"{copy.manifest_sha256})"
        )
        if copy.purged_at:
            continue
        try:
            manifest = json.loads((Path(copy.path) / "manifest.json").read_text(encoding="utf-8"))
            entries = manifest["files"]
        except (OSError, ValueError, KeyError) as exc:
            _err(f"{copy.path}/manifest.json: unreadable ({exc})")
            return 1
        for name, entry in sorted(entries.items()):
            _out(f"  {name}  {entry['size']} bytes")
    return 0


def _archive_copies(args: argparse.Namespace, key: str | None) -> list[ArchiveCopy] | None:
    settings = _settings(args)
    if not _store_exists(settings):
        if key:
            _err(f"escalation {key}: no such escalation (the worker has not run)")
            return None
        return []
    store = _open_store(settings, SystemClock())
    try:
        if key is None:
            return store.archives()
        esc = store.escalation_by_key(key)
        if esc is None:
            _err(f"escalation {key}: no such escalation (see escalations status)")
            return None
        return store.archives(esc.id)
    finally:
        store.close()


def archive_hold(args: argparse.Namespace) -> int:
    """Put an escalation on local legal hold (``--release``: lift it); retention keeps its
    copies while it is held."""
    from jobs.retention import HOLDS

    settings = _settings(args)
    if not _store_exists(settings):
        _err(f"escalation {args.key}: no such escalation (the worker has not run)")
        return 1
    store = _open_store(settings, SystemClock())
    try:
        if store.escalation_by_key(args.key) is None:
            _err(f"escalation {args.key}: no such escalation (see escalations status)")
            return 1
        with store.transaction() as tx:
            holds = dict(store.get_meta(HOLDS) or {})
            if args.release:
                holds.pop(args.key, None)
            else:
                holds[args.key] = SystemClock().now().isoformat()
            store.set_meta(tx, HOLDS, holds)
    finally:
        store.close()
    _out(f"{args.key}: {'hold lifted' if args.release else 'on legal hold'}")
    return 0
