"""The commands with ``ESCALATIONS_DATABASE_URL=postgresql://…`` (issue 19): ``run``,
``check``, ``status`` (and ``--json``), ``effects list/retry`` and ``diagnostics`` open the
store ``wiring.open_configured_store`` chooses, on a throwaway PostgreSQL server
(``tests/pg.py``) and the demo sandbox on a loopback port. The state directory gets no
SQLite file; a server that refuses the login, or a schema newer than the code, stops the
command with one line (exit 78) that never shows the password."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from escalations.app.cli import main
from escalations.app.version import package_version
from escalations.clock import SystemClock
from escalations.store.postgres import PostgresStore, load_migrations
from sandbox import SandboxServer, ServerError, ZammadSandbox, serve
from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[3]
BOT = "escalation-bot"
ALICE = "alice.agent@fused.example"
ARTICLES = "/api/v1/ticket_articles$"


@pytest.fixture
def url(cli_env: Path, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database with no store in it yet (as a DBA creates it), named by the URL."""
    name = pg_server.new_database(migrated=False)
    url = pg_server.url(name)
    monkeypatch.setenv("ESCALATIONS_DATABASE_URL", url)
    yield url
    pg_server.drop_database(name)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    sandbox = ZammadSandbox.demo()
    with serve(sandbox, host="127.0.0.1", port=0) as running:
        monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", running.url)
        monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", sandbox.token_of(BOT))
        monkeypatch.setenv("ESCALATIONS_HTTP_REQUESTS_PER_MINUTE", "6000")
        monkeypatch.setenv("ESCALATIONS_HTTP_MAX_ATTEMPTS", "1")
        yield running


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def no_sqlite_file(state: Path) -> bool:
    return not state.exists() or not any(state.rglob("*.sqlite3*"))


def test_the_worker_and_the_commands_run_on_postgresql(
    capsys: pytest.CaptureFixture[str],
    url: str,
    server: SandboxServer,
    cli_env: Path,
    pg_server: PgServer,
) -> None:
    password = pg_server.app_password
    shown = url.replace(f":{password}@", "@")
    assert shown != url  # the URL carries the password, the output must not

    code, out, err = cli(capsys, "status")  # nothing there yet, and nothing is made
    assert code == 2, err
    assert out.splitlines()[0] == f"store: {shown} does not exist yet (the worker has not run)"
    assert cli(capsys, "effects", "list") == (0, "no effects\n", "")
    code, out, err = cli(capsys, "check")
    assert code == 0, err
    assert f"store: ok ({shown}: none yet; PostgreSQL, shared by the workers)" in out
    assert "store directory" not in out  # no directory for a server's database

    sandbox = server.sandbox
    (original,) = [
        i for i, t in sandbox.tickets.items() if t["title"] == "Broadband down since Monday"
    ]
    sandbox.agent_update(original, ALICE, escalation_requested=True)
    code, _, err = cli(capsys, "run", "--once")
    assert code == 0, err
    (escalation,) = [i for i, t in sandbox.tickets.items() if t.get("escalation_key")]
    sandbox.seed_customer_email(original, "Still no line.", subject="Re: broadband")
    sandbox.faults.add(ServerError(method="POST", path=ARTICLES, times=1, status=422))
    code, _, err = cli(capsys, "run", "--once")
    assert code == 0, err

    # what the worker wrote is in the database, not in a file
    store = PostgresStore(url, SystemClock())
    try:
        assert store.escalation_by_key(str(sandbox.ticket(escalation)["escalation_key"]))
        (failed,) = [e for e in store.effects() if e.state.value == "failed"]
    finally:
        store.close()
    assert no_sqlite_file(cli_env)

    latest = len(load_migrations())
    code, out, err = cli(capsys, "status")
    assert code == 1, err  # degraded: the failed copy
    assert out.splitlines()[0] == f"store: {shown} (schema {latest})"
    assert f"failed copy_article {failed.key}" in out
    code, out, _ = cli(capsys, "status", "--json")
    data = json.loads(out)
    assert (data["store"], data["store_schema"]) == (shown, latest)
    assert [e["id"] for e in data["failed_effects"]] == [failed.id]
    code, out, _ = cli(capsys, "check")
    assert f"store: ok ({shown}: schema {latest}, readable;" in out

    code, out, _ = cli(capsys, "effects", "list", "--failed")
    assert out.split(" ", 1)[0] == str(failed.id)
    code, out, err = cli(capsys, "effects", "retry", str(failed.id))
    assert (code, err) == (0, "")
    code, _, err = cli(capsys, "run", "--once")
    assert code == 0, err
    copies = [a for a in sandbox.articles_of(escalation) if "Still no line." in str(a["body"])]
    assert len(copies) == 1
    code, out, _ = cli(capsys, "effects", "list")
    assert f"{failed.id} copy_article done " in out

    key = str(sandbox.ticket(escalation)["escalation_key"])
    assert cli(capsys, "archive", "hold", key) == (0, f"{key}: on legal hold\n", "")
    assert cli(capsys, "archive", "verify") == (0, "no hard copies yet\n", "")
    code, out, err = cli(capsys, "archive", "show", key)
    assert (code, err) == (
        1,
        f"escalations: escalation {key}: no hard copy yet (it is archived once closed)\n",
    )

    code, out, _ = cli(capsys, "diagnostics", "--json")
    section = json.loads(out)["store"]
    assert (section["url"], section["engine"], section["schema"]) == (shown, "postgresql", latest)
    assert section["integrity"] == ["ok"]
    assert no_sqlite_file(cli_env)
    assert password not in out


@pytest.mark.parametrize("command", [["check"], ["run", "--once"], ["status"], ["report"]])
def test_a_refused_login_is_one_line_exit_78_without_the_password(
    capsys: pytest.CaptureFixture[str],
    url: str,
    server: SandboxServer,
    pg_server: PgServer,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    wrong = "not-the-password-42"
    database = url.rsplit("/", 1)[1]
    monkeypatch.setenv("ESCALATIONS_DATABASE_URL", pg_server.url(database, password=wrong))
    code, out, err = cli(capsys, *command)
    assert code == 78, (out, err)
    (line,) = err.splitlines()
    assert line.startswith("escalations: ESCALATIONS_DATABASE_URL: postgresql://"), line
    assert "password authentication failed" in line
    assert wrong not in out + err
    assert pg_server.app_password not in out + err


def test_a_schema_newer_than_the_code_is_refused_by_check_and_run(
    capsys: pytest.CaptureFixture[str], url: str, server: SandboxServer, pg_server: PgServer
) -> None:
    PostgresStore(url, SystemClock()).close()
    latest = len(load_migrations())
    database = url.rsplit("/", 1)[1]
    with pg_server.admin(database) as conn:
        conn.execute(
            "INSERT INTO schema_migration (version, name) VALUES (%s, 'from_the_future.sql')",
            (latest + 1,),
        )
    for command in (["check"], ["run", "--once"]):
        code, out, err = cli(capsys, *command)
        assert code == 78, (command, out, err)
        (line,) = err.splitlines()
        assert f"database schema version {latest + 1} is newer than this code" in line
        assert pg_server.app_password not in out + err


def _status_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    _, out, _ = cli(capsys, "status", "--json")
    data: dict[str, Any] = json.loads(out)
    return data


def _wait_for(
    capsys: pytest.CaptureFixture[str],
    condition: Callable[[list[dict[str, Any]]], bool],
    procs: list[subprocess.Popen[str]],
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers: list[dict[str, Any]] = _status_json(capsys)["workers"]
        if condition(workers):
            return workers
        for proc in procs:
            assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.2)
    raise AssertionError(f"status never showed the workers: {workers}")


def test_status_lists_the_running_workers_with_their_roles(
    capsys: pytest.CaptureFixture[str], url: str, server: SandboxServer, cli_env: Path
) -> None:
    """Two real ``escalations run`` processes on one database: the first leads, the second
    executes; ``status`` lists both (host, pid, role, version, last heartbeat), and neither
    once they have stopped cleanly."""
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "escalations", "run"]
    procs: list[subprocess.Popen[str]] = []
    try:
        procs.append(subprocess.Popen(argv, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True))
        _wait_for(capsys, lambda ws: [w["role"] for w in ws] == ["leader"], procs)
        procs.append(subprocess.Popen(argv, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True))
        workers = _wait_for(capsys, lambda ws: len(ws) == 2, procs)
        by_pid = {w["pid"]: w for w in workers}
        assert set(by_pid) == {p.pid for p in procs}
        assert by_pid[procs[0].pid]["role"] == "leader"
        assert by_pid[procs[1].pid]["role"] == "executor"
        for w in workers:
            assert w["host"] == socket.gethostname()
            assert w["version"] == package_version()
            assert w["silent"] is False
        _, out, _ = cli(capsys, "status")
        lines = out.splitlines()
        at = lines.index("workers:")
        shown = sorted(lines[at + 1 : at + 3])
        for proc, role in ((procs[0], "leader"), (procs[1], "executor")):
            assert any(
                line.startswith(f"  {socket.gethostname()} pid {proc.pid} {role} ")
                and " last heartbeat " in line
                for line in shown
            ), shown
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
    assert _status_json(capsys)["workers"] == []
    _, out, _ = cli(capsys, "status")
    assert "workers:" not in out.splitlines()  # none running: no list
