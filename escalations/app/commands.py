"""What each ``escalations`` command does; ``cli.py`` only parses arguments and maps errors."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from datetime import UTC, tzinfo
from pathlib import Path
from types import FrameType

from escalations.app.logs import configure_logging
from escalations.clock import Clock, FixedStartClock, SystemClock, parse_instant
from escalations.errors import ConfigError
from escalations.faults import faults_from_env
from escalations.mappings import Mappings, load_mappings
from escalations.models import EffectState
from escalations.settings import Settings, load_settings

log = logging.getLogger(__name__)

FAILED_SHOWN = 10
"""How many failed effects ``escalations status`` lists, newest last."""


def _out(line: str = "") -> None:
    print(line)  # noqa: T201


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.env_file)
    configure_logging(settings.log_level)
    return settings


def _mappings(settings: Settings) -> Mappings:
    return load_mappings(Path(settings.mappings_dir))


# -- check ----------------------------------------------------------------------------------


def check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    mappings = _mappings(settings)
    profile = mappings.profile
    helpdesk = settings.helpdesk_url if settings.helpdesk_configured else "no helpdesk configured"
    _out(f"settings: ok ({helpdesk})")
    _out(
        f"mappings: ok ({mappings.directory}: {profile.max_level} levels, "
        f"{len(profile.reasons)} reasons, {len(profile.segments)} segments, "
        f"time zone {profile.process.time_zone})"
    )
    if not args.live:
        return 0
    from escalations.app.wiring import build_adapter
    from escalations.bindings.zammad.livecheck import live_check

    clock = SystemClock()
    adapter = build_adapter(settings, clock)
    problems = live_check(adapter, mappings)
    for problem in problems:
        print(f"escalations: live: {problem}", file=sys.stderr)  # noqa: T201
    if problems:
        return 78
    _out(f"helpdesk: ok ({settings.helpdesk_url}: every field, tag, group, state and person found)")
    return 0


# -- run ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from escalations.app.wiring import build, build_adapter, open_store
    from escalations.effects.executor import new_worker_id

    settings = _settings(args)
    if args.at and not args.once:
        raise ConfigError("--at needs --once (a single pass as of that instant)")
    clock: Clock = SystemClock()
    if args.at:
        try:
            clock = FixedStartClock(parse_instant(args.at))
        except ValueError:
            raise ConfigError(
                f"--at: '{args.at}' is not an instant with a time zone "
                "(ISO-8601, e.g. 2026-12-01T09:30:00Z)"
            ) from None
    mappings = _mappings(settings)
    adapter = build_adapter(settings, clock)
    store = open_store(settings, clock)
    try:
        worker_id = new_worker_id()
        store.acquire_lock(worker=worker_id)
        stop = threading.Event()
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
        worker = installation.worker()
        _install_stop_handlers(stop)
        if args.once:
            results = worker.run_once()
            return 0 if all(r is not None for r in results) else 1
        worker.run_forever()
        return 0
    finally:
        store.release_lock()
        store.close()


def _install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info("worker.stopping signal=%s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# -- status ---------------------------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    from escalations.app.wiring import open_store

    settings = _settings(args)
    clock = SystemClock()
    if not settings.database_path.exists():
        _out(f"store: {settings.database_path} does not exist yet (the worker has not run)")
        return 0
    store = open_store(settings, clock)
    try:
        summary = store.status(clock.now())
        failed = store.effects(EffectState.FAILED)
    finally:
        store.close()
    tz: tzinfo
    try:
        tz = _mappings(settings).profile.tz
    except ConfigError:
        tz = UTC
    _out(f"store: {settings.database_path} (schema {summary.schema_version})")
    if summary.escalations:
        _out("open escalations:")
        rows = sorted(summary.escalations.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        for (state, level), count in rows:
            _out(f"  level {level}  {state:<10} {count}")
    else:
        _out("open escalations: none")
    _out(f"duties due: {summary.duties_due}")
    effects = summary.effects
    _out("effects: " + ", ".join(f"{s.value} {effects.get(s, 0)}" for s in EffectState))
    for effect in failed[-FAILED_SHOWN:]:
        ticket = effect.payload.get("ticket_id") or effect.payload.get("parent_id")
        _out(f"  failed {effect.kind} {effect.key} (ticket {ticket}): {effect.last_error}")
    if len(failed) > FAILED_SHOWN:
        _out(f"  … and {len(failed) - FAILED_SHOWN} more failed effects")
    last = summary.last_successful_poll
    shown = last.astimezone(tz).isoformat(timespec="seconds") if last else "never"
    _out(f"last successful poll: {shown}")
    if summary.last_errors:
        _out("last errors:")
        for run in summary.last_errors:
            when = run.started_at.astimezone(tz).isoformat(timespec="seconds")
            _out(f"  {when} {run.job}: {run.error}")
    return 0


# -- sandbox and demo -----------------------------------------------------------------------


def sandbox(args: argparse.Namespace) -> int:
    from escalations.app.demo import serve_sandbox

    configure_logging("INFO")
    return serve_sandbox(port=args.port, seed=args.seed)


def demo(args: argparse.Namespace) -> int:
    from escalations.app.demo import run_demo

    return run_demo(state_dir=args.state_dir)
