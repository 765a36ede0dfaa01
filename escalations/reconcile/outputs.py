"""The report's files in ``ESCALATIONS_REPORTS_DIR/<date>/``: ``report.json`` (every finding,
schema ``helpdesk-escalations/report`` version ``SCHEMA_VERSION``, shipped as
``escalations/reconcile/schema/report-v3.json``; version 2 added ``repairs``, version 3 the
kinds ``worker_silent``, ``worker_restarted`` and ``leader_changed`` and the ``workers`` of
the period, and ``report-v1.json``
and ``report-v2.json`` stay for the reports written before), ``findings.csv`` (one row per
finding, with the repair made for it) and
``report.html`` (``escalations.reconcile.render``). Written to a temporary name and renamed,
so a reader never sees half a file; each writer has its own temporary name (the worker's
job and the command may write the same day at once: the last rename wins). A file that
cannot be written is ``ReportNotWritten``, one line naming its path."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Mapping
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from escalations.errors import ConfigError
from escalations.reconcile.findings import (
    INFORMATIONAL,
    TITLES,
    Finding,
    FindingKind,
    Repair,
    Report,
)

SCHEMA_NAME = "helpdesk-escalations/report"
SCHEMA_VERSION = 3
CSV_COLUMNS = (
    "kind",
    "title",
    "subject",
    "escalation",
    "ticket_id",
    "ticket_number",
    "other_ticket_id",
    "since",
    "detail",
    "repair",
)


def schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The JSON Schema ``report.json`` of ``version`` follows (this version's by default)."""
    text = (
        resources.files("escalations.reconcile")
        .joinpath(f"schema/report-v{version}.json")
        .read_text(encoding="utf-8")
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _finding(f: Finding) -> dict[str, Any]:
    return {
        "kind": f.kind.value,
        "subject": f.subject,
        "detail": f.detail,
        "escalation": f.escalation,
        "ticket_id": f.ticket_id,
        "ticket_number": f.ticket_number,
        "other_ticket_id": f.other_ticket_id,
        "since": _time(f.since),
    }


def _repair(r: Repair) -> dict[str, Any]:
    return {
        "kind": r.kind.value,
        "subject": r.subject,
        "action": r.action,
        "outcome": r.outcome.value,
        "detail": r.detail,
        "escalation": r.escalation,
        "ticket_id": r.ticket_id,
        "ticket_number": r.ticket_number,
        "effects": list(r.effects),
    }


def repair_text(r: Repair) -> str:
    """One repair in words: outcome, action and detail."""
    return f"{r.outcome.value}: {r.action}" + (f" ({r.detail})" if r.detail else "")


def as_json(report: Report) -> dict[str, Any]:
    counts = report.counts()
    previous = report.previous_counts
    return {
        "schema": SCHEMA_NAME,
        "version": report.schema_version,
        "generated_at": _time(report.generated_at),
        "date": report.day.isoformat(),
        "time_zone": report.time_zone,
        "helpdesk": {"name": report.helpdesk, "url": report.helpdesk_url},
        "summary": {
            "findings": len(report.findings),
            "drift": report.drift,
            "escalations_checked": report.escalations_checked,
            "tickets_read": report.tickets_read,
            "requests": report.requests,
            "counts": {k.value: n for k, n in counts.items()},
            "previous_counts": (
                None if previous is None else {k.value: previous.get(k, 0) for k in FindingKind}
            ),
            "informational": sorted(k.value for k in INFORMATIONAL),
        },
        "open_by_level": [
            {"level": level, "count": n} for level, n in sorted(report.open_by_level.items())
        ],
        "duties_by_day": [
            {"date": d.day.isoformat(), "done": d.done, "missed": d.missed}
            for d in report.duties_by_day
        ],
        "not_checked": list(report.not_checked),
        "findings": [_finding(f) for f in report.findings],
        "repairs": None if report.repairs is None else [_repair(r) for r in report.repairs],
        "workers": [
            {
                "host": w.host,
                "pid": w.pid,
                "version": w.version,
                "started_at": _time(w.started_at),
                "last_heartbeat_at": _time(w.last_heartbeat_at),
                "stopped_at": _time(w.stopped_at),
                "state": w.state.value,
                "leading": list(w.leading),
            }
            for w in report.workers
        ],
    }


def as_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for f in report.findings:
        row = _finding(f)
        repair = report.repair_of(f)
        writer.writerow(
            [
                row["kind"],
                TITLES[f.kind],
                row["subject"],
                row["escalation"] or "",
                "" if f.ticket_id is None else f.ticket_id,
                row["ticket_number"] or "",
                "" if f.other_ticket_id is None else f.other_ticket_id,
                row["since"] or "",
                _csv_safe(f.detail),
                "" if repair is None else _csv_safe(repair_text(repair)),
            ]
        )
    return out.getvalue()


def _csv_safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (customer text ends up in details)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def day_dir(root: Path, day: date) -> Path:
    return root / day.isoformat()


class ReportNotWritten(ConfigError):
    """A report file or its day's directory cannot be written (a file in the directory's
    place, a directory in a file's, a read-only mount, another user's directory): the
    admin's to fix, exit 78 like a reports directory that is not writable."""


def write(report: Report, root: Path) -> Path:
    """Write the three files for ``report.day`` under ``root``; returns the directory.

    Raises:
        ReportNotWritten: a file or the directory cannot be written (one line, its path).
    """
    from escalations.reconcile.render import render_html

    directory = day_dir(root, report.day)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise _not_written(directory, exc) from None
    _atomic(directory / "report.json", json.dumps(as_json(report), indent=2) + "\n")
    _atomic(directory / "findings.csv", as_csv(report))
    _atomic(directory / "report.html", render_html(report))
    return directory


def _atomic(path: Path, text: str) -> None:
    """``text`` to ``path`` through a temporary file of this writer's own, renamed."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _not_written(path, exc) from None
    temp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        temp.replace(path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise _not_written(path, exc) from None


def _not_written(path: Path, exc: OSError) -> ReportNotWritten:
    return ReportNotWritten(f"cannot write the report: {path}: {exc.strerror or exc}")


def previous_counts(root: Path, day: date) -> Mapping[FindingKind, int] | None:
    """The counts of the newest report before ``day`` under ``root``; ``None`` if none (or
    it cannot be read: the summary then shows no comparison)."""
    if not root.is_dir():
        return None
    earlier = sorted(
        (p for p in root.iterdir() if p.is_dir() and _is_day(p.name) and p.name < day.isoformat()),
        reverse=True,
    )
    for directory in earlier:
        try:
            data = json.loads((directory / "report.json").read_text(encoding="utf-8"))
            counts = data["summary"]["counts"]
            return {k: int(counts.get(k.value, 0)) for k in FindingKind}
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def _is_day(name: str) -> bool:
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return len(name) == 10
