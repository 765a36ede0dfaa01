"""The printable hard copy (``escalation.pdf``), made with fpdf2 from the archive record.

No network is touched while rendering: the fonts are TrueType files on this machine
(``ESCALATIONS_ARCHIVE_FONT_DIR``, Debian's ``fonts-dejavu-core`` by default), embedded in the
PDF; DejaVu Sans covers Latin with every accent, Greek, Cyrillic, Armenian, Georgian, Hebrew
and Arabic letters. Pages: the title page (customer, tickets, dates, levels, owner, RFO), then
every article in order with its headers, the level history, the carrier contact log, the
duties done and missed, and the parking and confirmation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fpdf import FPDF

from escalations.errors import ConfigError

REGULAR = "DejaVuSans.ttf"
BOLD = "DejaVuSans-Bold.ttf"
FAMILY = "ArchiveSans"


def render(record: dict[str, Any], *, font_dir: Path, tz: ZoneInfo, process: str) -> bytes:
    pdf = _document(font_dir)
    esc = record["escalation"]
    created = datetime.fromisoformat(record["archived_at"])
    pdf.set_creation_date(created)
    pdf.set_title(f"Escalation {esc['key']}")
    pdf.set_author(process)

    pdf.add_page()
    _heading(pdf, f"Escalation hard copy — {process}", 16)
    _rows(
        pdf,
        [
            ("Escalation", esc["key"]),
            ("Customer", esc["customer"]["name"]),
            ("Original ticket", f"#{esc['original_ticket']['number']}"),
            ("Escalation ticket", f"#{esc['escalation_ticket']['number']}"),
            ("Segment", esc["segment_label"]),
            ("Reason", esc["reason_label"]),
            ("Highest level", str(max([esc["level"], *(c["to_level"] for c in record["levels"])]))),
            ("Owner", esc["owner"]["name"]),
            ("Flagged", _local(esc["flagged_at"], tz)),
            ("Opened", _local(esc["opened_at"], tz)),
            ("Resolved", _local(_last_resolve(record), tz)),
            ("Confirmed", _local(esc["confirmed_at"], tz)),
            ("Closed", _local(esc["closed_at"], tz)),
            ("Archived", _local(record["archived_at"], tz)),
        ],
    )
    _heading(pdf, "Reason for Outage (RFO)", 12)
    _text(pdf, esc["rfo"] or "(none recorded)")

    pdf.add_page()
    _heading(pdf, "Articles", 14)
    for article in record["articles"]:
        _article(pdf, article, tz)

    pdf.add_page()
    _heading(pdf, "Level history", 14)
    _lines(
        pdf,
        (
            f"{_local(c['changed_at'], tz)}: level {c['from_level']} → {c['to_level']}"
            for c in record["levels"]
        ),
        "(stayed at level 1)",
    )
    _heading(pdf, "Carrier contacts", 14)
    _lines(
        pdf,
        (
            f"{_local(c['called_at'], tz)}: {c['carrier'] or '?'} ({c['stage'] or '?'}), "
            f"{c['forename'] or '?'} in {c['location'] or '?'}"
            + (f", id {c['user_id']}" if c["user_id"] else "")
            for c in record["carrier_contacts"]
        ),
        "(none logged)",
    )
    _heading(pdf, "Communication plan", 14)
    _lines(
        pdf,
        (
            f"{d['reason']}, due {_local(d['due_at'], tz)}: "
            + (
                f"done {_local(d['done_at'], tz)} ({d['evidence']})"
                if d["done_at"]
                else ("missed" if d["missed_at"] else "not settled")
            )
            for d in record["duties"]
        ),
        "(no duties)",
    )
    _heading(pdf, "Parking and confirmation", 14)
    _lines(
        pdf,
        (
            f"parked {_local(p['resolved_at'], tz)} until {_local(p['pending_until'], tz)}: "
            f"{p['outcome'] or 'open'}" + (f" ({p['reason']})" if p["reason"] else "")
            for p in record["parkings"]
        ),
        "(never parked)",
    )
    return bytes(pdf.output())


def _document(font_dir: Path) -> FPDF:
    regular, bold = font_dir / REGULAR, font_dir / BOLD
    for font in (regular, bold):
        if not font.is_file():
            raise ConfigError(
                f"ESCALATIONS_ARCHIVE_FONT_DIR: {font} not found (install Debian's "
                "fonts-dejavu-core, or point the setting at a directory holding DejaVu Sans)"
            )
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font(FAMILY, "", str(regular))
    pdf.add_font(FAMILY, "B", str(bold))
    pdf.set_font(FAMILY, size=10)
    return pdf


def _article(pdf: FPDF, article: dict[str, Any], tz: ZoneInfo) -> None:
    who = "internal note" if article["internal"] else "visible to the customer"
    title = article["subject"] or f"{article['kind']} article"
    _heading(pdf, f"{_local(article['created_at'], tz)} — {title}", 11)
    rows = [
        ("Ticket", f"#{article['ticket']}"),
        ("Kind", f"{article['kind']} from {article['sender']} ({who})"),
    ]
    rows += [(k.title(), article[k]) for k in ("from", "to", "cc") if article[k]]
    files = [f"{f['name']} ({f['size']} bytes)" for f in article["attachments"]]
    if files:
        rows.append(("Attachments", ", ".join(files)))
    _rows(pdf, rows)
    _text(pdf, article["text"] or "(empty)")
    pdf.ln(3)


def _heading(pdf: FPDF, text: str, size: int) -> None:
    pdf.set_font(FAMILY, "B", size)
    pdf.multi_cell(0, size * 0.55, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, "", 10)
    pdf.ln(1)


def _rows(pdf: FPDF, rows: list[tuple[str, str]]) -> None:
    for label, value in rows:
        pdf.set_font(FAMILY, "B", 10)
        pdf.cell(40, 5.5, f"{label}:")
        pdf.set_font(FAMILY, "", 10)
        pdf.multi_cell(0, 5.5, value or "—", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _text(pdf: FPDF, text: str) -> None:
    pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _lines(pdf: FPDF, lines: Iterable[str], empty: str) -> None:
    found = list(lines)
    for line in found or [empty]:
        pdf.multi_cell(0, 5, f"• {line}" if found else line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _last_resolve(record: dict[str, Any]) -> str | None:
    parkings = record["parkings"]
    return str(parkings[-1]["resolved_at"]) if parkings else record["escalation"]["resolved_at"]


def _local(value: str | None, tz: ZoneInfo) -> str:
    if not value:
        return "—"
    local = datetime.fromisoformat(value).astimezone(tz)
    return f"{local:%a %d %b %Y %H:%M} {tz.key}"
