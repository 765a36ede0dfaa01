"""The report's files (issue 16 #2): ``report.json`` valid against the schema shipped in the
package, ``findings.csv`` one row per finding, ``report.html`` self-contained (a CSP that
allows only its own hashed style, no script, nothing fetched), hostile text escaped."""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest

from escalations.reconcile import outputs
from escalations.reconcile.findings import (
    TITLES,
    DayDuties,
    Finding,
    FindingKind,
    Repair,
    RepairOutcome,
    Report,
    WorkerSeen,
    WorkerState,
)
from escalations.reconcile.render import render_html

AT = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
HOSTILE = '<script>alert(1)</script><img src="https://evil.example/x.png">=HYPERLINK("x")'


def _report(*findings: Finding, previous: dict[FindingKind, int] | None = None) -> Report:
    return Report(
        schema_version=outputs.SCHEMA_VERSION,
        generated_at=AT,
        day=date(2026, 12, 7),
        time_zone="Europe/Dublin",
        helpdesk="zammad",
        helpdesk_url="https://zammad.example",
        ticket_link="/#ticket/zoom/{id}",
        findings=findings,
        open_by_level={1: 3, 2: 1, 3: 0, 4: 0},
        duties_by_day=tuple(
            DayDuties(day=date(2026, 12, 7) - timedelta(days=13 - n), done=n % 4, missed=n % 2)
            for n in range(14)
        ),
        requests=42,
        escalations_checked=4,
        tickets_read=9,
        previous_counts=previous,
        not_checked=("subscriptions: not compared",),
    )


def _findings() -> tuple[Finding, ...]:
    return (
        Finding(
            kind=FindingKind.OWNER_DIFFERS,
            subject="escalation:zammad:ticket:5:1",
            detail="owned by Bob; level 2 is owned by the duty manager",
            escalation="zammad:ticket:5:1",
            ticket_id=77,
            ticket_number="31077",
        ),
        Finding(
            kind=FindingKind.EMAIL_NOT_COPIED,
            subject="article:901",
            detail=HOSTILE,
            escalation="zammad:ticket:5:1",
            ticket_id=5,
            ticket_number="31005",
            other_ticket_id=77,
            since=AT - timedelta(hours=3),
        ),
        Finding(kind=FindingKind.WORKER_UNHEALTHY, subject="poll", detail="never polled"),
    )


def test_every_kind_has_a_title_and_is_in_the_schema() -> None:
    schema = outputs.schema()
    kinds = schema["properties"]["findings"]["items"]["properties"]["kind"]["enum"]
    assert kinds == [k.value for k in FindingKind]
    assert set(TITLES) == set(FindingKind)
    counted = schema["properties"]["summary"]["properties"]["counts"]["required"]
    assert counted == kinds


@pytest.mark.parametrize("previous", [None, {FindingKind.OWNER_DIFFERS: 3}])
def test_report_json_validates_against_the_shipped_schema(
    previous: dict[FindingKind, int] | None,
) -> None:
    data = outputs.as_json(_report(*_findings(), previous=previous))
    jsonschema.validate(data, outputs.schema(), format_checker=jsonschema.FormatChecker())
    assert data["summary"]["counts"]["owner_differs"] == 1
    assert data["summary"]["drift"] == 3
    assert data["findings"][1]["since"] == "2026-12-07T03:00:00Z"


def test_the_schema_refuses_what_the_report_never_writes() -> None:
    data = outputs.as_json(_report(*_findings()))
    data["findings"][0]["kind"] = "made_up"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, outputs.schema())
    data = outputs.as_json(_report())
    data["summary"]["counts"].pop("copy_twice")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, outputs.schema())


def test_findings_csv_has_one_row_per_finding_and_no_formula() -> None:
    rows = list(csv.DictReader(io.StringIO(outputs.as_csv(_report(*_findings())))))
    assert [r["kind"] for r in rows] == ["owner_differs", "email_not_copied", "worker_unhealthy"]
    assert rows[0]["ticket_id"] == "77"
    assert rows[0]["title"] == TITLES[FindingKind.OWNER_DIFFERS]
    formula = outputs.as_csv(
        _report(
            Finding(kind=FindingKind.EFFECT_FAILED, subject="effect:1", detail="=1+2"),
        )
    )
    assert list(csv.DictReader(io.StringIO(formula)))[0]["detail"] == "'=1+2"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def test_report_html_is_self_contained_and_escapes_what_it_shows() -> None:
    page = render_html(_report(*_findings(), previous={FindingKind.OWNER_DIFFERS: 3}))
    parsed = _Page()
    parsed.feed(page)
    (csp,) = [
        a["content"]
        for t, a in parsed.tags
        if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp is not None
    assert "default-src 'none'" in csp
    (style,) = parsed.styles
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp  # the one inline style is the one allowed
    names = {t for t, _ in parsed.tags}
    assert not names & {"script", "img", "link", "iframe", "object", "embed"}
    assert not any("style" in a for _, a in parsed.tags)  # no inline style attributes
    fetched = [a.get("src") for _, a in parsed.tags if a.get("src")]
    assert fetched == []
    links = [a["href"] for t, a in parsed.tags if t == "a"]
    external = [h for h in links if h and not h.startswith("#")]
    assert external == [  # tables in the order of the kinds: the copy, then the owner
        "https://zammad.example/#ticket/zoom/5",
        "https://zammad.example/#ticket/zoom/77",
        "https://zammad.example/#ticket/zoom/77",
    ]
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<svg") == 2
    assert re.search(r'<td class="n">1</td><td class="n">3</td><td class="n down">-2</td>', page)
    assert "@media print" in style


def test_a_clean_report_says_so() -> None:
    page = render_html(_report())
    assert "No drift" in page
    assert "<section" not in page


def test_write_puts_three_files_in_the_day_directory_and_reads_the_previous(
    tmp_path: Path,
) -> None:
    yesterday = _report(*_findings())
    yesterday = Report(**{**yesterday.__dict__, "day": date(2026, 12, 6)})
    outputs.write(yesterday, tmp_path)
    assert outputs.previous_counts(tmp_path, date(2026, 12, 6)) is None
    counts = outputs.previous_counts(tmp_path, date(2026, 12, 7))
    assert counts is not None
    assert counts[FindingKind.OWNER_DIFFERS] == 1
    assert counts[FindingKind.COPY_TWICE] == 0
    directory = outputs.write(_report(), tmp_path)
    assert directory == tmp_path / "2026-12-07"
    assert sorted(p.name for p in directory.iterdir()) == [
        "findings.csv",
        "report.html",
        "report.json",
    ]
    assert json.loads((directory / "report.json").read_text())["findings"] == []


def test_each_writer_has_its_own_temporary_file(tmp_path: Path) -> None:
    """The worker's job and the command shared ``.report.json.tmp``: writing the same day at
    once, one renamed the other's half-written file away (or found it gone)."""
    day = tmp_path / "2026-12-07"
    day.mkdir()
    others = {name: f"another writer's half of {name}" for name in outputs_names()}
    for name, text in others.items():
        (day / f".{name}.tmp").write_text(text)
    outputs.write(_report(), tmp_path)
    for name, text in others.items():
        assert (day / f".{name}.tmp").read_text() == text
    assert sorted(p.name for p in day.iterdir() if not p.name.startswith(".")) == outputs_names()


def outputs_names() -> list[str]:
    return ["findings.csv", "report.html", "report.json"]


@pytest.mark.parametrize("blocker", ["file", "directory"])
def test_a_file_that_cannot_be_written_is_one_error_naming_it(tmp_path: Path, blocker: str) -> None:
    day = tmp_path / "2026-12-07"
    if blocker == "file":
        day.write_text("in the directory's place")
        where = day
    else:
        (day / "findings.csv").mkdir(parents=True)
        where = day / "findings.csv"
    with pytest.raises(outputs.ReportNotWritten, match=f"^cannot write the report: {where}: "):
        outputs.write(_report(), tmp_path)
    assert not day.is_dir() or [p.name for p in day.iterdir() if p.name.endswith(".tmp")] == []


def _repaired() -> Report:
    owner, copy, _health = _findings()
    repairs = (
        Repair(
            kind=FindingKind.OWNER_DIFFERS,
            subject=owner.subject,
            action="give the ticket back to the level's owner",
            outcome=RepairOutcome.DONE,
            escalation=owner.escalation,
            ticket_id=owner.ticket_id,
            ticket_number=owner.ticket_number,
            effects=("update_ticket repair-owner:zammad:ticket:5:1:1",),
        ),
        Repair(
            kind=FindingKind.EMAIL_NOT_COPIED,
            subject=copy.subject,
            action="copy the customer's email",
            outcome=RepairOutcome.SKIPPED,
            detail=HOSTILE,
        ),
    )
    return dataclasses.replace(_report(*_findings()), repairs=repairs)


def test_repairs_are_in_the_json_the_csv_and_the_page() -> None:
    report = _repaired()
    data = outputs.as_json(report)
    jsonschema.validate(data, outputs.schema())
    assert [(r["kind"], r["outcome"]) for r in data["repairs"]] == [
        ("owner_differs", "done"),
        ("email_not_copied", "skipped"),
    ]
    assert outputs.as_json(_report())["repairs"] is None  # no repair asked for
    rows = list(csv.DictReader(io.StringIO(outputs.as_csv(report))))
    assert [r["repair"] for r in rows] == [
        "done: give the ticket back to the level's owner",
        f"skipped: copy the customer's email ({HOSTILE})",
        "",
    ]
    page = render_html(report)
    assert "Repairs (2)" in page
    assert "<script>alert" not in page
    assert "Repairs" not in render_html(_report())


def test_the_schema_version_was_bumped_for_the_workers_kinds_and_v2_is_still_shipped() -> None:
    assert outputs.SCHEMA_VERSION == 3
    assert outputs.schema()["properties"]["version"]["const"] == 3
    workers = dataclasses.replace(
        _report(
            Finding(kind=FindingKind.WORKER_SILENT, subject="worker:w1", detail="last heard"),
            Finding(kind=FindingKind.LEADER_CHANGED, subject="leader:w2:w1", detail="took over"),
        ),
        workers=(
            WorkerSeen(
                host="h1", pid=7, version="0.3.0", started_at=AT - timedelta(hours=5),
                last_heartbeat_at=AT - timedelta(hours=4), stopped_at=None,
                state=WorkerState.SILENT,
            ),
            WorkerSeen(
                host="h2", pid=8, version="0.3.0", started_at=AT - timedelta(hours=6),
                last_heartbeat_at=AT, stopped_at=None, state=WorkerState.RUNNING,
                leading=("copy", "sync"),
            ),
        ),
    )  # fmt: skip
    data = outputs.as_json(workers)
    jsonschema.validate(data, outputs.schema(), format_checker=jsonschema.FormatChecker())
    assert data["workers"][1] == {
        "host": "h2", "pid": 8, "version": "0.3.0", "started_at": "2026-12-07T00:00:00Z",
        "last_heartbeat_at": "2026-12-07T06:00:00Z", "stopped_at": None, "state": "running",
        "leading": ["copy", "sync"],
    }  # fmt: skip
    page = render_html(workers)
    assert "Workers (2)" in page
    assert '<td class="up">silent</td>' in page
    assert "<td>copy, sync</td>" in page
    assert "Workers (" not in render_html(_report())
    assert data["summary"]["drift"] == 1  # a leader change is for the record
    assert "leader_changed" in data["summary"]["informational"]
    older = dict(data, version=2)
    del older["workers"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(older, outputs.schema(2))  # v2 knows no such kind
    assert outputs.schema(2)["properties"]["version"]["const"] == 2


def test_the_schema_version_was_bumped_for_repairs_and_v1_is_still_shipped() -> None:
    assert "repairs" in outputs.schema()["required"]
    older = outputs.schema(1)
    assert older["properties"]["version"]["const"] == 1
    assert "repairs" not in older["properties"]
    data = outputs.as_json(_repaired())
    data["repairs"][0]["outcome"] = "guessed"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, outputs.schema())
