"""``escalations report``: the reconciliation report (``jobs.reconcile``), on demand.

- no option: as of now, for today (in the process time zone);
- ``--at TIME``: as of that instant, for its local day;
- ``--date DAY``: for that local day, as of its end (or now, if the day is not over);
- an instant later than now (beyond ``CLOCK_SKEW``; with ``--repair`` any later than now) or
  before ``EARLIEST`` is refused: a report from the future would file its repairs' writes
  under that time;
- a past day whose report exists is not written again without ``--force`` (the files would
  be replaced by a report built from today's helpdesk);
- ``--dry-run``: the report is built and its summary printed; no file is written;
- ``--repair``: after the report, the findings that are safe to fix are fixed through the
  outbox and the effects executor (``jobs.reconcile.repair``), and the report lists the
  repairs; with ``--dry-run`` the repairs are planned and printed, and nothing is written
  (no helpdesk write, no store row, no file).

The files go to ``ESCALATIONS_REPORTS_DIR/<day>/`` (``report.html``, ``report.json``,
``findings.csv``); the summary on stdout names the directory, the request count, one line
per kind found and one per repair. Without ``--repair`` it reads the helpdesk and the store
and writes neither: it may run beside the worker (with ``--repair`` too: the store's unique
effect keys and the executor's claims keep the two from writing anything twice). The
store is the one ``ESCALATIONS_DATABASE_URL`` names: the SQLite file, or PostgreSQL
(``postgresql://…``, which several workers may share). Exit 0 when the report was made
(whatever it found or repaired), 78 for a bad setting or option (or a PostgreSQL login
refused, or a report file that cannot be written), 1 when the helpdesk or the store cannot
be read or the store does not exist yet.
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from escalations.clock import Clock, FixedStartClock, SystemClock, parse_instant
from escalations.errors import ConfigError, EscalationsError

CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of this host's clock ``--at`` may be (another host's clock)."""
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""The earliest instant a report may be for: earlier is a typo (no store reaches back so far,
and ``0001-01-01`` is out of the range the report's periods can be computed in)."""

if TYPE_CHECKING:
    from escalations.reconcile.findings import Report
    from escalations.settings import Settings
    from escalations.store.base import Store


class _Counter:
    """Counts the helpdesk's answers (a ``requests`` response hook on the adapter's session:
    each request sent, a retry too). The adapter's ``progress`` pings, counted before, come
    between the slices of the request budget's waits and a download's chunks as well."""

    def __init__(self) -> None:
        self.count = 0

    def seen(self, response: object, *args: object, **kwargs: object) -> None:
        self.count += 1

    def value(self) -> int:
        return self.count


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``report`` command's arguments (``escalations.app.cli`` calls this)."""
    p = sub.add_parser(
        "report",
        help="compare the helpdesk with the worker's store and write the reconciliation "
        "report (report.html, report.json, findings.csv) to ESCALATIONS_REPORTS_DIR/<date>/",
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "--date",
        metavar="DAY",
        help="the local day to report on (YYYY-MM-DD), as of its end or now if it is not over",
    )
    when.add_argument(
        "--at",
        metavar="TIME",
        help="report as of this instant (ISO-8601 with zone, e.g. 2026-12-07T06:00:00Z)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="build the report and print its summary; write no file (with --repair: list "
        "the repairs it would make, and write nothing at all)",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="fix what is safe (missing links and copies, level tags, owners, subscriptions, "
        "a missing hard copy) through the worker's outbox, and list the repairs",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write a past day's report again over the files it has (refused without: they "
        "would be replaced by a report built from the helpdesk as it is now)",
    )
    p.set_defaults(func=report)


def _instant(args: argparse.Namespace, now: datetime, tz: tzinfo) -> datetime:
    if args.at:
        try:
            at = parse_instant(args.at)
        except ValueError:
            raise ConfigError(
                f"--at: '{args.at}' is not an instant with a time zone "
                "(ISO-8601, e.g. 2026-12-07T06:00:00Z)"
            ) from None
        except OverflowError:  # 0001-01-01T00:00:00+05:00 is before year 1 in UTC
            raise ConfigError(f"--at: {args.at} is out of range") from None
        ahead = timedelta(0) if args.repair else CLOCK_SKEW
        if at > now + ahead:
            with_repair = " (with --repair: not later than now)" if args.repair else ""
            raise ConfigError(
                f"--at: {args.at} is in the future{with_repair}; now is "
                f"{now.replace(microsecond=0).isoformat()}"
            )
        if at < EARLIEST:
            raise ConfigError(f"--at: {args.at} is before {EARLIEST.date().isoformat()}")
        return at
    if args.date:
        try:
            day = date.fromisoformat(args.date)
        except ValueError:
            raise ConfigError(f"--date: '{args.date}' is not a day (YYYY-MM-DD)") from None
        if day < EARLIEST.date():
            raise ConfigError(f"--date: {args.date} is before {EARLIEST.date().isoformat()}")
        if day > now.astimezone(tz).date():
            raise ConfigError(f"--date: {args.date} has not begun yet")
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
        return min(end.astimezone(UTC) - timedelta(microseconds=1), now)
    return now


def _refuse_to_replace(args: argparse.Namespace, root: Path, day: date, today: date) -> None:
    """A past day's files are that night's record: replaced only with ``--force``."""
    from escalations.reconcile import outputs

    if args.dry_run or args.force or day >= today:
        return
    existing = outputs.day_dir(root, day) / "report.json"
    if existing.exists():
        raise ConfigError(
            f"the report of {day.isoformat()} exists ({existing}); a report built now would "
            "replace it with the helpdesk as it is today: add --force to write it again"
        )


def report(args: argparse.Namespace) -> int:
    from escalations.app.logs import configure_logging
    from escalations.app.preflight import prepare
    from escalations.app.wiring import build
    from escalations.mappings import load_mappings
    from escalations.reconcile import outputs
    from escalations.settings import load_settings
    from jobs.reconcile import build_and_repair, build_report

    settings = load_settings(args.env_file)
    configure_logging(settings.log_level, settings.log_format)
    mappings = load_mappings(Path(settings.mappings_dir), settings.helpdesk)
    tz = mappings.profile.tz
    now = SystemClock().now()
    at = _instant(args, now, tz)
    if args.date and at.astimezone(tz).date() != date.fromisoformat(args.date):
        raise ConfigError(f"--date: {args.date} has not begun yet")
    _refuse_to_replace(
        args, settings.reports_path, at.astimezone(tz).date(), now.astimezone(tz).date()
    )
    clock: Clock = FixedStartClock(at) if (args.at or args.date) else SystemClock()
    _ensure_store(settings)
    counter = _Counter()
    adapter = prepare(settings, clock, on_response=counter.seen)
    store = _open(settings, clock)
    try:
        installation = build(settings, clock, adapter=adapter, store=store, mappings=mappings)
        ctx = installation.ctx
        root = settings.reports_path
        day = at.astimezone(tz).date()
        previous = outputs.previous_counts(root, day)
        if args.repair:
            made = build_and_repair(
                ctx,
                installation.executor,
                at,
                dry_run=args.dry_run,
                requests=counter.value,
                previous=previous,
            )
        else:
            made = build_report(ctx, at, requests=counter.value, previous=previous)
        where = None if args.dry_run else outputs.write(made, root)
    finally:
        store.close()
    for line in summary(made, where):
        print(line)  # noqa: T201
    return 0


def _ensure_store(settings: Settings) -> None:
    """The worker has made the store these settings name (the SQLite file, or the store's
    tables in the PostgreSQL database); the report creates none."""
    if settings.database_is_postgresql:
        from escalations.app.preflight import probe_postgres
        from escalations.store.postgres import redacted_url

        if probe_postgres(settings) is None:  # ConfigError for a refused login: exit 78
            raise EscalationsError(
                f"no store in {redacted_url(settings.database_url)}: the worker has not run "
                "with these settings"
            )
        return
    if not settings.database_path.exists():
        raise EscalationsError(
            f"no store at {settings.database_path}: the worker has not run with these settings"
        )


def _open(settings: Settings, clock: Clock) -> Store:
    """The store the settings name (``wiring.open_configured_store``); a PostgreSQL server
    that refuses the login is a setting to fix (exit 78), one line without the password."""
    from escalations.app.wiring import open_configured_store
    from escalations.errors import StoreError, StoreUnavailable

    try:
        return open_configured_store(settings, clock)
    except StoreUnavailable:
        raise
    except StoreError as exc:
        if not settings.database_is_postgresql:
            raise
        raise ConfigError(f"ESCALATIONS_DATABASE_URL: {exc}") from None


def summary(made: Report, where: Path | None) -> list[str]:
    """What the command prints: where, how much it cost, then one line per kind found."""
    from escalations.reconcile.findings import TITLES
    from escalations.reconcile.outputs import repair_text

    lines = [
        f"report {made.day.isoformat()} as of {made.generated_at.isoformat()}: "
        f"{made.drift} to look at, {len(made.findings)} findings; "
        f"{made.escalations_checked} escalations, {made.tickets_read} tickets, "
        f"{made.requests if made.requests is not None else '?'} helpdesk requests",
        f"written to {where}" if where is not None else "dry run: no file written",
    ]
    previous = made.previous_counts
    for kind, n in made.counts().items():
        if n or (previous and previous.get(kind)):
            before = f" (previous: {previous.get(kind, 0)})" if previous is not None else ""
            lines.append(f"  {n:4d}  {TITLES[kind]}{before}")
    lines.extend(f"  not checked: {text}" for text in made.not_checked)
    if made.repairs is not None:
        lines.append(_repairs_line(made))
        for r in made.repairs:
            on = f" #{r.ticket_number}" if r.ticket_number else ""
            effects = f" [{', '.join(r.effects)}]" if r.effects else ""
            lines.append(f"  {r.kind.value}{on}: {repair_text(r)}{effects}")
    return lines


def _repairs_line(made: Report) -> str:
    counts = Counter(r.outcome.value for r in made.repairs or ())
    shown = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    return f"repairs: {shown or 'nothing safe to repair'}"
