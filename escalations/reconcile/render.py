"""``report.html``: one self-contained page a service manager reads over coffee and can print.

- Nothing is fetched: the style is inline (allowed by its hash in the page's
  Content-Security-Policy, which forbids everything else), the charts are inline SVG, no
  script, no font, no image file. Links to tickets open the helpdesk; they are navigation,
  not fetches.
- At the top, the summary: findings by kind against the previous report; after
  ``--repair``, the repairs (what was written for which finding, and how it went); then the
  charts
  (open escalations by level, duties done and missed over the last days); then one table
  per kind found, each row linking to its ticket; then the workers of the period (host,
  pid, version, start, last heartbeat, clean stop, state, the jobs each leads).
- Every text from the helpdesk or the store is escaped.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from escalations.reconcile.findings import (
    INFORMATIONAL,
    TITLES,
    Finding,
    FindingKind,
    RepairOutcome,
    Report,
    WorkerState,
)

CSS = """
body { font: 14px/1.45 "DejaVu Sans", Arial, sans-serif; color: #1c1c1c; margin: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ccc; }
p.meta { color: #555; margin: 0 0 16px; }
table { border-collapse: collapse; width: 100%; margin: 0 0 8px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e3e3e3;
  vertical-align: top; }
th { background: #f3f3f3; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.up { color: #b00020; } .down { color: #1b5e20; }
.ok { color: #1b5e20; font-weight: bold; }
.charts { display: flex; gap: 32px; flex-wrap: wrap; }
figure { margin: 0; } figcaption { font-weight: bold; margin-bottom: 4px; }
section.kind { break-inside: avoid-page; }
@media print {
  body { margin: 0; font-size: 11px; }
  a { color: inherit; text-decoration: none; }
  a[href]::after { content: ""; }
  h2 { break-after: avoid-page; }
  tr { break-inside: avoid; }
}
"""

BAR = "#3f6fb5"
DONE = "#2e7d32"
MISSED = "#c62828"


def _csp(css: str) -> str:
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'none'; "
        "base-uri 'none'; form-action 'none'"
    )


def render_html(report: Report) -> str:
    title = f"Escalations reconciliation — {report.day.isoformat()}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{escape(_csp(CSS))}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{CSS}</style>",
        "</head><body>",
        f"<h1>{escape(title)}</h1>",
        _meta(report),
        _summary(report),
        _repairs(report),
        '<div class="charts">',
        _levels_chart(report),
        _duties_chart(report),
        "</div>",
        *(_kind_table(report, kind) for kind in FindingKind),
        _workers(report),
        _not_checked(report),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _local(report: Report, instant: datetime) -> str:
    """An instant as people read it: in the process time zone."""
    return instant.astimezone(ZoneInfo(report.time_zone)).strftime("%Y-%m-%d %H:%M")


def _meta(report: Report) -> str:
    requests = "not counted" if report.requests is None else f"{report.requests}"
    return (
        f'<p class="meta">Generated {escape(_local(report, report.generated_at))} '
        f"({escape(report.time_zone)}) · helpdesk {escape(report.helpdesk)} "
        f"{escape(report.helpdesk_url)} · {report.escalations_checked} escalations and "
        f"{report.tickets_read} tickets checked · helpdesk requests: {requests}</p>"
    )


def _delta(now: int, before: int | None) -> str:
    if before is None:
        return '<td class="n">—</td><td class="n">—</td>'
    diff = now - before
    cls = "up" if diff > 0 else "down" if diff < 0 else ""
    sign = f"+{diff}" if diff > 0 else str(diff)
    return f'<td class="n">{before}</td><td class="n {cls}">{sign}</td>'


def summary_counts(report: Report) -> list[tuple[FindingKind, int, int | None]]:
    """The summary's rows: each kind found tonight or the night before, with tonight's count
    and the previous one (``None`` when there is no previous report)."""
    counts = report.counts()
    previous = report.previous_counts
    rows = []
    for kind in FindingKind:
        before = previous.get(kind, 0) if previous is not None else None
        if counts[kind] or before:
            rows.append((kind, counts[kind], before))
    return rows


def headline(report: Report) -> str:
    """The summary's first line, as text."""
    if report.drift == 0:
        return "No drift: the helpdesk and the worker agree."
    return f"{report.drift} finding{'s' if report.drift != 1 else ''} need attention."


def kind_title(kind: FindingKind) -> str:
    return TITLES[kind] + (" (for the record)" if kind in INFORMATIONAL else "")


def _summary(report: Report) -> str:
    if report.drift == 0:
        lead = f'<p class="ok">{escape(headline(report))}</p>'
    else:
        lead = f"<p><strong>{escape(headline(report))}</strong></p>"
    rows = []
    for kind, now, before in summary_counts(report):
        name = escape(kind_title(kind))
        link = f'<a href="#{kind.value}">{name}</a>' if now else name
        rows.append(f'<tr><td>{link}</td><td class="n">{now}</td>{_delta(now, before)}</tr>')
    table = (
        '<table><thead><tr><th>finding</th><th class="n">tonight</th>'
        '<th class="n">previous</th><th class="n">change</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
        if rows
        else ""
    )
    return f'<h2 id="summary">Summary</h2>{lead}{table}'


OUTCOME_CLASS = {RepairOutcome.DONE: "down", RepairOutcome.FAILED: "up"}


def _repairs(report: Report) -> str:
    if report.repairs is None:
        return ""
    if not report.repairs:
        return '<h2 id="repairs">Repairs</h2><p>Nothing was safe to repair.</p>'
    dry = all(r.outcome in (RepairOutcome.PLANNED, RepairOutcome.SKIPPED) for r in report.repairs)
    lead = (
        "<p>A dry run: these would be written; nothing was.</p>"
        if dry
        else "<p>Written through the worker's outbox; the findings above are as found before.</p>"
    )
    rows = []
    for r in report.repairs:
        cls = OUTCOME_CLASS.get(r.outcome)
        outcome = f'<td class="{cls}">' if cls else "<td>"
        rows.append(
            "<tr>"
            + f'<td><a href="#{r.kind.value}">{escape(TITLES[r.kind])}</a></td>'
            + _ticket_cell(report, r.ticket_id, r.ticket_number)
            + f"<td>{escape(r.action)}</td>"
            + f"{outcome}{escape(r.outcome.value)}</td>"
            + f"<td>{escape(r.detail)}</td>"
            + "</tr>"
        )
    return (
        f'<h2 id="repairs">Repairs ({len(report.repairs)})</h2>{lead}'
        "<table><thead><tr><th>finding</th><th>ticket</th><th>repair</th><th>outcome</th>"
        "<th>detail</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _levels_chart(report: Report) -> str:
    items = sorted(report.open_by_level.items())
    width, bar, gap, height = 60 + 70 * max(len(items), 1), 40, 30, 160
    top = max([n for _, n in items] + [1])
    shapes = []
    for i, (level, n) in enumerate(items):
        x = 40 + i * (bar + gap)
        h = round(110 * n / top)
        y = 130 - h
        shapes.append(
            f'<rect x="{x}" y="{y}" width="{bar}" height="{h}" fill="{BAR}">'
            f"<title>level {level}: {n}</title></rect>"
            f'<text x="{x + bar // 2}" y="{y - 4}" text-anchor="middle" font-size="12">{n}</text>'
            f'<text x="{x + bar // 2}" y="148" text-anchor="middle" font-size="12">L{level}</text>'
        )
    return (
        "<figure><figcaption>Open escalations by level</figcaption>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="Open escalations by level">'
        f'<line x1="30" y1="130" x2="{width - 10}" y2="130" stroke="#888"/>'
        + "".join(shapes)
        + "</svg></figure>"
    )


def _duties_chart(report: Report) -> str:
    days = report.duties_by_day
    bar, gap = 18, 8
    width, height = 50 + len(days) * (bar + gap), 180
    top = max([d.done + d.missed for d in days] + [1])
    shapes = []
    for i, d in enumerate(days):
        x = 40 + i * (bar + gap)
        h_done = round(110 * d.done / top)
        h_missed = round(110 * d.missed / top)
        y_done = 130 - h_done
        y_missed = y_done - h_missed
        label = f"{d.day.isoformat()}: {d.done} done, {d.missed} missed"
        shapes.append(
            f"<g><title>{label}</title>"
            f'<rect x="{x}" y="{y_done}" width="{bar}" height="{h_done}" fill="{DONE}"/>'
            f'<rect x="{x}" y="{y_missed}" width="{bar}" height="{h_missed}" fill="{MISSED}"/>'
            f'<text x="{x + bar // 2}" y="146" text-anchor="middle" font-size="10">'
            f"{d.day.day}</text></g>"
        )
    legend = (
        f'<rect x="40" y="158" width="10" height="10" fill="{DONE}"/>'
        '<text x="54" y="167" font-size="11">done</text>'
        f'<rect x="100" y="158" width="10" height="10" fill="{MISSED}"/>'
        '<text x="114" y="167" font-size="11">missed</text>'
    )
    return (
        f"<figure><figcaption>Duties done and missed, last {len(days)} days</figcaption>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="Duties done and missed by day">'
        f'<line x1="30" y1="130" x2="{width - 10}" y2="130" stroke="#888"/>'
        + "".join(shapes)
        + legend
        + "</svg></figure>"
    )


def _ticket_cell(report: Report, ticket_id: int | None, number: str | None) -> str:
    if ticket_id is None:
        return "<td></td>"
    label = escape(f"#{number}" if number else f"ticket {ticket_id}")
    url = report.ticket_url(ticket_id)
    if url is None:
        return f"<td>{label}</td>"
    return f'<td><a href="{escape(url)}">{label}</a></td>'


def _kind_table(report: Report, kind: FindingKind) -> str:
    found: list[Finding] = [f for f in report.findings if f.kind is kind]
    if not found:
        return ""
    rows = []
    for f in found:
        other = _ticket_cell(report, f.other_ticket_id, None) if f.other_ticket_id else "<td></td>"
        rows.append(
            "<tr>"
            + _ticket_cell(report, f.ticket_id, f.ticket_number)
            + f"<td>{escape(f.escalation or '')}</td>"
            + f"<td>{escape(f.detail)}</td>"
            + f"<td>{escape(_local(report, f.since) if f.since else '')}</td>"
            + other
            + "</tr>"
        )
    return (
        f'<section class="kind"><h2 id="{kind.value}">{escape(TITLES[kind])} ({len(found)})</h2>'
        "<table><thead><tr><th>ticket</th><th>escalation</th><th>what</th><th>since</th>"
        "<th>related</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></section>"
    )


def _workers(report: Report) -> str:
    if not report.workers:
        return ""
    rows = []
    for w in report.workers:
        cls = ' class="up"' if w.state is WorkerState.SILENT else ""
        heard = _local(report, w.last_heartbeat_at) if w.last_heartbeat_at else ""
        stopped = _local(report, w.stopped_at) if w.stopped_at else ""
        rows.append(
            "<tr>"
            + f'<td>{escape(w.host)}</td><td class="n">{w.pid}</td>'
            + f"<td>{escape(w.version)}</td><td>{escape(_local(report, w.started_at))}</td>"
            + f"<td>{escape(heard)}</td><td>{escape(stopped)}</td>"
            + f"<td{cls}>{escape(w.state.value)}</td>"
            + f"<td>{escape(', '.join(w.leading))}</td>"
            + "</tr>"
        )
    return (
        f'<section class="kind"><h2 id="workers">Workers ({len(report.workers)})</h2>'
        '<table><thead><tr><th>host</th><th class="n">pid</th><th>version</th>'
        "<th>started</th><th>last heartbeat</th><th>stopped cleanly</th><th>state</th>"
        "<th>leads</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></section>"
    )


def _not_checked(report: Report) -> str:
    if not report.not_checked:
        return ""
    items = "".join(f"<li>{escape(text)}</li>" for text in report.not_checked)
    return f'<h2 id="not-checked">Not checked tonight</h2><ul>{items}</ul>'
