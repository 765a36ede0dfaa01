"""The nightly report's summary as an internal note, for ``[report] note_on_ticket``: the
headline, the counts against the previous night, the request count, and where the files
are. The note is short; the findings themselves are in ``report.html``."""

from __future__ import annotations

from html import escape
from pathlib import Path

from escalations.reconcile.findings import Report
from escalations.reconcile.render import headline, kind_title, summary_counts


def subject(report: Report) -> str:
    return f"Escalations reconciliation report {report.day.isoformat()}"


def summary_html(report: Report, day_dir: Path) -> str:
    rows = []
    for kind, now, before in summary_counts(report):
        change = "" if before is None else f" (previous night {before}, {_signed(now - before)})"
        rows.append(f"<li>{escape(kind_title(kind))}: {now}{escape(change)}</li>")
    counts = f"<ul>{''.join(rows)}</ul>" if rows else ""
    requests = "not counted" if report.requests is None else str(report.requests)
    return (
        f"<p><strong>{escape(subject(report))}</strong> ({escape(report.time_zone)})</p>"
        f"<p>{escape(headline(report))}</p>{counts}"
        f"<p>{report.escalations_checked} escalations and {report.tickets_read} tickets "
        f"checked; helpdesk requests: {requests}.</p>"
        f"<p>The whole report, with every finding and its tickets: "
        f"{escape(str(day_dir / 'report.html'))} on the worker's host.</p>"
    )


def _signed(diff: int) -> str:
    return f"+{diff}" if diff > 0 else str(diff)
