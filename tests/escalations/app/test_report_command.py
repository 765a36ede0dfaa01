"""``escalations report`` (issue 16 #1, #2): the command wires its own adapter from the
settings (talking to the sandbox through the same ``responses`` mount as the world), writes
the three files into ``REPORTS_DIR/<day>/``, prints the summary with its request count, and
compares with the previous report; ``--dry-run`` writes nothing; ``--repair`` fixes what is
safe and lists it (``--repair --dry-run`` only lists it); bad options are one line and exit
78."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import PIPE
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from escalations.app.cli import main
from escalations.clock import SystemClock
from escalations.models import Effect
from escalations.reconcile import outputs
from escalations.store.postgres import PostgresStore
from sandbox import ZammadSandbox, serve
from tests.jobs.conftest import BASE_URL, BOT, World
from tests.jobs.conftest import world as world  # the fixture, shared with tests/jobs
from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[3]
TITLE = "Broadband down since Monday"
ALICE = "alice.agent@fused.example"


@pytest.fixture
def cli_world(world: World, cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(world.ctx.settings.state_dir))
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", BASE_URL)
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", world.sandbox.token_of(BOT))
    monkeypatch.setenv("ESCALATIONS_HTTP_REQUESTS_PER_MINUTE", "6000")  # no real waits
    # the command's own directory: the world's worker writes its nightly report too
    monkeypatch.setenv("ESCALATIONS_REPORTS_DIR", str(cli_env / "cli-reports"))
    original = world.ticket_by_title(TITLE)
    world.flag(original)
    world.sync()
    world.sandbox.seed_customer_email(original, "Still down.", subject="Still down")
    world.sync()
    world.clock.advance(timedelta(minutes=15))
    world.sync()
    return world


def _reports(world: World) -> Path:
    return Path(os.environ["ESCALATIONS_REPORTS_DIR"])


def test_report_writes_the_three_files_for_the_day(
    cli_world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    at = cli_world.clock.now().isoformat()
    assert main(["report", "--at", at]) == 0
    out = capsys.readouterr().out
    directory = _reports(cli_world) / "2026-12-01"
    assert f"written to {directory}" in out
    assert sorted(p.name for p in directory.iterdir()) == [
        "findings.csv",
        "report.html",
        "report.json",
    ]
    data = json.loads((directory / "report.json").read_text())
    assert data["findings"] == []
    assert data["summary"]["previous_counts"] is None
    assert data["summary"]["requests"] > 0
    assert f"{data['summary']['requests']} helpdesk requests" in out


def test_the_request_count_is_the_requests_the_helpdesk_answered(
    cli_world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """It counted the adapter's progress pings, which also come between the slices of the
    request budget's waits: with the budget's pace it was about twice the requests made."""
    before = len(cli_world.rsps.calls)
    assert main(["report", "--dry-run", "--at", cli_world.clock.now().isoformat()]) == 0
    made = len(cli_world.rsps.calls) - before
    out = capsys.readouterr().out
    assert made > 0
    assert f", {made} helpdesk requests" in out, out


def test_report_compares_with_the_previous_night_and_dry_run_writes_nothing(
    cli_world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--at", cli_world.clock.now().isoformat()]) == 0
    esc = cli_world.the_escalation_ticket()
    cli_world.sandbox.agent_update(esc["id"], "alice.agent@fused.example", owner_id=1)
    cli_world.clock.advance(timedelta(days=1))
    cli_world.sync()
    capsys.readouterr()
    assert main(["report", "--date", "2026-12-02", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: no file written" in out
    assert "Owner differs from the owner the level requires (previous: 0)" in out
    assert not (_reports(cli_world) / "2026-12-02").exists()
    assert main(["report", "--date", "2026-12-02"]) == 0
    data = json.loads((_reports(cli_world) / "2026-12-02" / "report.json").read_text())
    assert data["summary"]["counts"]["owner_differs"] == 1
    assert data["summary"]["previous_counts"]["owner_differs"] == 0


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["report", "--at", "yesterday"], "--at: 'yesterday' is not an instant"),
        (["report", "--date", "2026-13-01"], "--date: '2026-13-01' is not a day"),
    ],
)
def test_bad_options_are_one_line_and_exit_78(
    cli_world: World, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    assert main(argv) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert words in err[0]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["report", "--at", "9999-12-31T23:59:59Z"], "--at: 9999-12-31T23:59:59Z is in the future"),
        (["report", "--at", "9999-12-31T23:59:59-05:00"], "is out of range"),
        (["report", "--at", "0001-01-01T00:00:00Z"], "--at: 0001-01-01T00:00:00Z is before 2000"),
        (["report", "--at", "0001-01-01T00:00:00+05:00"], "is out of range"),
        (["report", "--date", "0001-01-01"], "--date: 0001-01-01 is before 2000-01-01"),
        (["report", "--date", "1969-12-31"], "--date: 1969-12-31 is before 2000-01-01"),
        (["report", "--date", "9999-12-31"], "--date: 9999-12-31 has not begun yet"),
    ],
)
def test_instants_out_of_range_are_one_line_and_exit_78(
    cli_world: World, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    """They were an OverflowError's traceback (exit 1), or a report filed in 9999 or 1969."""
    assert main(argv) == 78
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert words in line
    assert list(_reports(cli_world).glob("*")) == []


def test_a_future_at_is_refused_beyond_a_small_skew_and_with_repair_at_all(
    cli_world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--repair --at <future>`` filed its writes under that time, and later repairs were
    skipped as "repaired while this report was reading" until then."""
    esc = cli_world.the_escalation_ticket()
    cli_world.sandbox.agent_update(esc["id"], ALICE, owner_id=1)
    soon = (SystemClock().now() + timedelta(minutes=2)).isoformat()
    later = (SystemClock().now() + timedelta(hours=1)).isoformat()
    effects = cli_world.store.effects()
    assert main(["report", "--repair", "--at", later]) == 78
    assert main(["report", "--repair", "--at", soon]) == 78
    assert main(["report", "--dry-run", "--at", later]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert "(with --repair: not later than now)" in err[1]
    assert "is in the future; now is" in err[2]
    assert cli_world.store.effects() == effects
    assert cli_world.sandbox.tickets[esc["id"]]["owner_id"] == 1
    assert main(["report", "--dry-run", "--at", soon]) == 0  # another host's clock


def test_a_past_days_report_is_not_replaced_without_force(
    cli_world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was silently replaced by a report built from today's helpdesk."""
    day = cli_world.clock.now().date().isoformat()  # the world's day: past for this host
    assert main(["report", "--date", day]) == 0
    path = _reports(cli_world) / day / "report.json"
    first, inode = path.read_text(), path.stat().st_ino
    capsys.readouterr()
    assert main(["report", "--date", day]) == 78
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"the report of {day} exists ({path})" in line
    assert "add --force to write it again" in line
    assert path.read_text() == first
    assert main(["report", "--at", cli_world.clock.now().isoformat()]) == 78
    assert main(["report", "--date", day, "--dry-run"]) == 0  # writes nothing
    assert main(["report", "--date", day, "--force"]) == 0
    assert path.stat().st_ino != inode  # written again (a new file renamed into place)


@pytest.mark.parametrize("blocker", ["file at the day", "directory at report.json", "read-only"])
def test_a_report_that_cannot_be_written_is_one_line_naming_its_path(
    cli_world: World, capsys: pytest.CaptureFixture[str], blocker: str
) -> None:
    """They were tracebacks (FileExistsError, IsADirectoryError, OSError), exit 1."""
    at = cli_world.clock.now().isoformat()
    root = _reports(cli_world)
    day = root / cli_world.clock.now().date().isoformat()
    root.mkdir(parents=True, exist_ok=True)
    if blocker == "file at the day":
        day.write_text("not a directory")
        where = day
    elif blocker == "directory at report.json":
        (day / "report.json").mkdir(parents=True)
        where = day / "report.json"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes a read-only directory")
        day.mkdir(mode=0o500)
        where = day / "report.json"
    try:
        assert main(["report", "--at", at, "--force"]) == 78
    finally:
        if day.is_dir():
            day.chmod(0o700)
    err = capsys.readouterr().err.strip().splitlines()
    (line,) = [e for e in err if e.startswith("escalations: ")]  # the rest: INFO log lines
    assert f"cannot write the report: {where}: " in line
    assert "Traceback" not in "\n".join(err)
    if day.is_dir():
        assert list(day.glob(".*.tmp")) == []  # no temporary file left behind


def test_no_store_is_one_line(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", BASE_URL)
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", "x")
    assert main(["report"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "no store at" in line


def test_the_demos_nightly_reports_find_no_drift(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The scripted day (flag, copies, levels 2 and 3, the carrier, the RFO, parking, the
    confirmation, the hard copy) through the worker: its report job writes the first day's
    report and the one of the day it closes, and neither lists anything."""
    state = tmp_path / "demo"
    assert main(["demo", "--state-dir", str(state)]) == 0
    capsys.readouterr()
    reports = sorted((state / "reports").glob("*/report.json"))
    assert reports, "the demo's worker wrote no nightly report"
    loaded = [json.loads(p.read_text()) for p in reports]
    for path, data in zip(reports, loaded, strict=True):
        assert data["findings"] == [], (path, data["findings"])
    assert any(level["count"] for level in loaded[0]["open_by_level"])  # during the day
    assert sum(d["done"] for d in loaded[-1]["duties_by_day"]) > 0  # the calls made


def test_repair_dry_run_lists_the_repairs_and_writes_nothing_then_repair_fixes_once(
    cli_world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The owner changed by hand: ``--repair --dry-run`` plans giving the ticket back and
    makes no write request (the sandbox's request log); ``--repair`` makes it, lists it in
    report.json (valid against the shipped schema) and findings.csv; a second ``--repair``
    writes nothing."""
    esc = cli_world.the_escalation_ticket()
    owner = cli_world.sandbox.tickets[esc["id"]]["owner_id"]
    cli_world.sandbox.agent_update(esc["id"], "alice.agent@fused.example", owner_id=1)
    cli_world.clock.advance(timedelta(minutes=15))
    cli_world.sync()
    at = cli_world.clock.now().isoformat()
    capsys.readouterr()
    writes = len(cli_world.writes())
    effects = cli_world.store.effects()
    assert main(["report", "--at", at, "--repair", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert cli_world.writes()[writes:] == []
    assert cli_world.store.effects() == effects
    assert not (_reports(cli_world) / "2026-12-01").exists()
    assert "repairs: 1 planned" in out
    assert "owner_differs" in out
    assert "planned: give the ticket back to the level's owner" in out
    assert cli_world.sandbox.tickets[esc["id"]]["owner_id"] == 1

    assert main(["report", "--at", at, "--repair"]) == 0
    out = capsys.readouterr().out
    assert "repairs: 1 done" in out
    assert cli_world.sandbox.tickets[esc["id"]]["owner_id"] == owner
    directory = _reports(cli_world) / "2026-12-01"
    data = json.loads((directory / "report.json").read_text())
    jsonschema.validate(data, outputs.schema())
    assert data["version"] == 3
    assert [(r["kind"], r["outcome"]) for r in data["repairs"]] == [("owner_differs", "done")]
    assert data["repairs"][0]["effects"][0].startswith("update_ticket repair-owner:")
    rows = list(csv.DictReader(io.StringIO((directory / "findings.csv").read_text())))
    assert [r["repair"] for r in rows] == ["done: give the ticket back to the level's owner"]
    assert "Repairs (1)" in (directory / "report.html").read_text()

    cli_world.clock.advance(timedelta(minutes=15))
    cli_world.sync()
    writes = len(cli_world.writes())
    again = ["report", "--at", cli_world.clock.now().isoformat(), "--repair", "--force"]
    assert main(again) == 0  # the day is past (the world's): its report is written again
    assert "repairs: nothing safe to repair" in capsys.readouterr().out
    assert cli_world.writes()[writes:] == []


def test_the_report_repair_and_dry_run_run_on_postgresql(
    cli_env: Path,
    pg_server: PgServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``ESCALATIONS_DATABASE_URL=postgresql://…`` (issue 16 on issue 19's store): before the
    worker has run the report says so in one line (no password); after it ran, ``report``,
    ``--dry-run``, ``--repair --dry-run`` and ``--repair`` read and repair the PostgreSQL
    store (the dry runs write no effect row and leave the ticket alone), the worker's second
    run is listed as a restart and a leader change, and no SQLite file appears."""
    name = pg_server.new_database(migrated=False)
    url = pg_server.url(name)
    shown = url.replace(f":{pg_server.app_password}@", "@")
    monkeypatch.setenv("ESCALATIONS_DATABASE_URL", url)
    reports = cli_env / "cli-reports"
    clock = _SetBack()
    sandbox = ZammadSandbox.demo(clock=clock)
    try:
        with serve(sandbox, host="127.0.0.1", port=0) as running:
            monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", running.url)
            monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", sandbox.token_of(BOT))
            monkeypatch.setenv("ESCALATIONS_HTTP_REQUESTS_PER_MINUTE", "6000")
            assert main(["report"]) == 1
            (line,) = capsys.readouterr().err.strip().splitlines()
            assert line == (
                f"escalations: no store in {shown}: the worker has not run with these settings"
            )

            (original,) = [i for i, t in sandbox.tickets.items() if t["title"] == TITLE]
            sandbox.agent_update(original, ALICE, escalation_requested=True)
            assert main(["run", "--once"]) == 0
            assert main(["run", "--once"]) == 0  # another worker run: a restart, a new leader
            (esc,) = [i for i, t in sandbox.tickets.items() if t.get("escalation_key")]
            owner = sandbox.tickets[esc]["owner_id"]
            # an hour ago, past the grace the report gives the worker to act on a change (it
            # took an instant an hour ahead, which --repair now refuses)
            clock.behind = timedelta(hours=1)
            sandbox.agent_update(esc, ALICE, owner_id=1)
            clock.behind = timedelta(0)
            # the command's own directory: the worker wrote its nightly report too
            monkeypatch.setenv("ESCALATIONS_REPORTS_DIR", str(reports))
            at = datetime.now(UTC).isoformat()
            day = datetime.fromisoformat(at).astimezone(ZoneInfo("Europe/London")).date()
            capsys.readouterr()

            assert main(["report", "--at", at, "--dry-run"]) == 0
            out = capsys.readouterr().out
            assert "dry run: no file written" in out
            assert "Owner differs from the owner the level requires" in out
            effects = _effects(url)
            assert main(["report", "--at", at, "--repair", "--dry-run"]) == 0
            out = capsys.readouterr().out
            assert "repairs: 1 planned" in out
            assert (_effects(url), sandbox.tickets[esc]["owner_id"]) == (effects, 1)
            assert not (reports / day.isoformat()).exists()

            assert main(["report", "--at", at, "--repair"]) == 0
            out = capsys.readouterr().out
            assert "repairs: 1 done" in out
            assert sandbox.tickets[esc]["owner_id"] == owner
            data = json.loads((reports / day.isoformat() / "report.json").read_text())
            jsonschema.validate(data, outputs.schema())
            assert [(r["kind"], r["outcome"]) for r in data["repairs"]] == [
                ("owner_differs", "done")
            ]
            assert main(["report", "--at", at]) == 0
            out = capsys.readouterr().out
            assert f"written to {reports / day.isoformat()}" in out
            # from the PostgreSQL store's history: both runs stopped cleanly
            assert "     1  Worker restarts" in out
            assert "     1  Leader changes" in out
            assert "went silent" not in out
            data = json.loads((reports / day.isoformat() / "report.json").read_text())
            (change,) = [f for f in data["findings"] if f["kind"] == "leader_changed"]
            assert "which had stopped cleanly at" in change["detail"]
    finally:
        pg_server.drop_database(name)
    assert not any(cli_env.rglob("*.sqlite3*"))


class _SetBack(SystemClock):
    """The system clock, set back by ``behind``: the sandbox stamps a change made earlier."""

    behind = timedelta(0)

    def now(self) -> datetime:
        return super().now() - self.behind


def _effects(url: str) -> list[Effect]:
    store = PostgresStore(url, SystemClock())
    try:
        return store.effects()
    finally:
        store.close()


def test_on_postgresql_a_killed_worker_and_the_leader_change_are_in_the_report(
    cli_env: Path,
    pg_server: PgServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 19 #5 with real workers: two ``escalations run`` processes on one PostgreSQL
    database (polling every second, a 3 s leadership lease); the leader is SIGKILLed, the
    other takes the poll's lease. ``escalations report`` lists the killed worker as silent
    (with its pid) and the take-over, and no restart (the other worker was running)."""
    name = pg_server.new_database()
    url = pg_server.url(name)
    monkeypatch.setenv("ESCALATIONS_DATABASE_URL", url)
    monkeypatch.setenv("ESCALATIONS_POLL_INTERVAL_SECONDS", "1")
    monkeypatch.setenv("ESCALATIONS_LEADER_LEASE_MIN_SECONDS", "3")
    monkeypatch.setenv("ESCALATIONS_REPORTS_DIR", str(cli_env / "reports"))
    sandbox = ZammadSandbox.demo()
    store = PostgresStore(url, SystemClock())
    procs: list[subprocess.Popen[str]] = []
    try:
        with serve(sandbox, host="127.0.0.1", port=0) as running:
            monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", running.url)
            monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", sandbox.token_of(BOT))
            monkeypatch.setenv("ESCALATIONS_HTTP_REQUESTS_PER_MINUTE", "6000")
            env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
            argv = [sys.executable, "-m", "escalations", "run"]
            for _ in range(2):
                procs.append(subprocess.Popen(argv, env=env, cwd=ROOT, stderr=PIPE, text=True))
                _until(lambda: len(store.workers()) == len(procs), procs)
            lease = store.lease("lease:sync")
            assert lease is not None
            by_id = {w.id: w for w in store.workers()}
            leader = next(p for p in procs if p.pid == by_id[lease.holder].pid)
            (other,) = [w for w in by_id.values() if w.id != lease.holder]
            _until(  # the leader beats after the other's start: both were running
                lambda: any(
                    w.id == lease.holder and w.heartbeat_at > other.started_at
                    for w in store.workers()
                ),
                procs,
            )
            leader.kill()
            leader.wait(timeout=10)
            _until(
                lambda: any(
                    g.previous_holder == lease.holder
                    for g in store.lease_grants(since=lease.acquired_at)
                ),
                [p for p in procs if p is not leader],
            )
            time.sleep(4)  # three polls without its heartbeat: silent
            capsys.readouterr()
            assert main(["report"]) == 0
            out = capsys.readouterr().out
            assert "     1  Workers that went silent" in out
            assert "     1  Leader changes" in out
            assert "Worker restarts" not in out
            (written,) = (cli_env / "reports").glob("*/report.json")
            found = {f["kind"]: f for f in json.loads(written.read_text())["findings"]}
            assert f"(pid {leader.pid}," in found["worker_silent"]["detail"]
            assert found["worker_silent"]["subject"] == f"worker:{lease.holder}"
            change = found["leader_changed"]["detail"]
            assert f"from the worker on {socket.gethostname()} (pid {leader.pid}," in change
            assert "which had gone silent" in change
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.communicate(timeout=30)
        store.close()
        pg_server.drop_database(name)


def _until(condition: Callable[[], bool], procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if condition():
            return
        for proc in procs:
            assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.2)
    raise AssertionError("the workers never got there")
