"""Database faults on the PostgreSQL store while the worker runs (issue 19 item 4): the server
stopped and started again under a worker running passes against the sandbox while customers
write; a deadlock with another session inside a job's transaction; and at start, a refused
login (exit 78) told apart from an unreachable server (exit 1: systemd starts it again)."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import responses

from escalations.clock import FakeClock
from escalations.effects.helpdesk import COPY_ARTICLE
from escalations.errors import StoreConflict, StoreUnavailable
from escalations.models import EffectState
from escalations.store.postgres import PostgresStore, _db
from jobs.context import JobContext, JobResult
from jobs.worker import Job, Worker
from tests.escalations.app.conftest import cli_env  # noqa: F401 - a fixture
from tests.escalations.app.test_postgres_cli import cli, server  # noqa: F401 - a fixture
from tests.jobs import conftest as jobs_world
from tests.jobs.conftest import World
from tests.pg import PgServer, _free_port

TITLE = "Broadband down since Monday"
EMAILS = 12


class Watcher:
    """What systemd would be told (``Liveness``)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.pings = 0

    def alive(self) -> None:
        self.pings += 1

    def status(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture
def pg_world(
    tmp_path: Path,
    clock: FakeClock,
    pg_server: PgServer,
    pg_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    """The jobs' ``world`` (sandbox, Zammad adapter, wired installation) with its store on
    the test's PostgreSQL database instead of a SQLite file."""
    url = pg_server.url(pg_database)
    monkeypatch.setattr(jobs_world, "SqliteStore", lambda _path, c: PostgresStore(url, c))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        world = jobs_world.make_world(tmp_path, clock, rsps, None)
        assert isinstance(world.ctx.store, PostgresStore)
        yield world
        world.store.close()


def events(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]


def passes(worker: Worker, clock: FakeClock, n: int = 1) -> None:
    for _ in range(n):
        clock.advance(timedelta(seconds=30))
        assert all(r is not None for r in worker.run_once()), "a job of the pass failed"


# -- the server restarted under a running worker ---------------------------------------------


def test_a_server_restarted_under_a_running_worker_loses_and_repeats_nothing(
    pg_world: World,
    pg_server: PgServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    world = pg_world
    watcher = Watcher()
    worker = world.installation.worker(liveness=watcher)
    original = world.ticket_by_title(TITLE)
    world.flag(original)
    passes(worker, clock)
    esc = world.the_escalation_ticket()

    down = threading.Event()
    restarted = threading.Event()

    def restart() -> None:
        """Stop the server at a random moment of the passes, keep it down until the worker
        has said so and tried again, then start it."""
        time.sleep(random.uniform(0.1, 0.8))  # noqa: S311 - a moment, not a secret
        pg_server.stop("fast")
        try:
            deadline = time.monotonic() + 30
            while worker.store_down is None and time.monotonic() < deadline:
                time.sleep(0.05)
            down.set()
            time.sleep(2.0)  # the worker tries the store again (0.5 s, then 1 s) meanwhile
        finally:
            pg_server.start()
            restarted.set()

    side = threading.Thread(target=restart, name="pg-restart")
    side.start()
    written = 0
    try:
        deadline = time.monotonic() + 90
        while (not restarted.is_set() or written < EMAILS) and time.monotonic() < deadline:
            if written < EMAILS:  # customers keep writing, before and after the restart
                written += 1
                world.sandbox.seed_customer_email(original, f"Still down, message {written}.")
            passes(worker, clock)
    finally:
        side.join(60)
    assert down.is_set(), "the worker never noticed the server was down"
    assert restarted.is_set()

    # at rest: past the claim of an effect whose commit the stop cut (it is looked for by
    # its marker before it is written again)
    clock.advance(timedelta(minutes=16))
    passes(worker, clock, 3)

    messages = [
        a["body"]
        for a in world.sandbox.articles_of(original)
        if a["sender"] == "Customer" and a["type"] in ("email", "web")
    ]
    copies = [c["body"] for c in world.copies_in(esc["id"])]
    assert len(copies) == len(messages), "a customer email was lost or copied twice"
    for n in range(1, EMAILS + 1):
        text = f"Still down, message {n}."
        assert sum(text in body for body in copies) == 1, text
    assert len(world.escalation_tickets()) == 1
    assert world.store.effects(EffectState.PENDING, EffectState.IN_FLIGHT, EffectState.FAILED) == []

    assert len(events(caplog, "store.unreachable")) == 1, events(caplog, "store.")
    (back,) = events(caplog, "store.reachable")
    assert " down for " in back
    assert events(caplog, "job.failed") == []
    assert any(line.startswith("store unreachable since ") for line in watcher.lines)
    assert watcher.lines[-1].startswith("polling ok")
    assert worker.store_down is None


class StopServerAtTheCommit:
    """At the first ``copy_article`` write sent to the helpdesk, the server stops before the
    executor commits it; it is started again two seconds later."""

    def __init__(self, pg: PgServer) -> None:
        self.server = pg
        self.starter: threading.Thread | None = None

    def point(self, name: str, *, kind: str | None = None) -> None:
        if name == "effect.sent" and kind == COPY_ARTICLE and self.starter is None:
            self.server.stop("fast")

            def start() -> None:
                time.sleep(2.0)
                self.server.start()

            self.starter = threading.Thread(target=start, name="pg-start")
            self.starter.start()


def test_a_write_whose_commit_the_outage_cut_is_finished_once_after_its_claim(
    pg_world: World, pg_server: PgServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    world = pg_world
    worker = world.installation.worker()
    original = world.ticket_by_title(TITLE)
    world.flag(original)
    passes(worker, clock)
    esc = world.the_escalation_ticket()
    before = len(world.copies_in(esc["id"]))
    fault = StopServerAtTheCommit(pg_server)
    world.installation.executor.faults = fault
    world.sandbox.seed_customer_email(original, "Cut at the commit.")
    try:
        passes(worker, clock)
    finally:
        if fault.starter is not None:
            fault.starter.join(30)
    assert fault.starter is not None, "no copy was written"
    assert events(caplog, "effect.commit_error") == []  # an outage, not a bug of the kind
    assert len(world.copies_in(esc["id"])) == before + 1  # written once, not yet committed
    (cut,) = world.store.effects(EffectState.IN_FLIGHT)
    assert cut.kind == COPY_ARTICLE

    clock.advance(timedelta(minutes=16))  # past its claim: looked for by its marker
    passes(worker, clock)
    assert world.store.get_effect(cut.id).state is EffectState.DONE  # type: ignore[union-attr]
    assert len(world.copies_in(esc["id"])) == before + 1
    assert any(
        e.startswith(f"effect.found kind={COPY_ARTICLE} id={cut.id}")
        for e in events(caplog, "effect.")
    )
    assert len(events(caplog, "store.unreachable")) == 1
    assert len(events(caplog, "store.reachable")) == 1


def test_a_stop_ends_the_wait_for_the_store_at_once(
    pg_world: World, pg_server: PgServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    worker = pg_world.installation.worker()
    passes(worker, clock)
    pg_server.stop("fast")
    try:
        threading.Timer(1.5, pg_world.ctx.stop.set).start()
        began = time.monotonic()
        clock.advance(timedelta(seconds=30))
        worker.run_once()
        assert time.monotonic() - began < 5  # the wait was on the stop event
    finally:
        pg_server.start()
    assert len(events(caplog, "store.unreachable")) == 1
    assert events(caplog, "store.reachable") == []


# -- conflicts --------------------------------------------------------------------------------


def test_a_deadlock_inside_a_job_is_retried_not_a_failed_run(
    pg_world: World,
    pg_server: PgServer,
    pg_database: str,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real deadlock: another session holds the row the job's transaction updates, and then
    waits for the store's write lock, which that transaction holds. The server rolls the
    job's transaction back (40P01); the worker runs the pass again, and it succeeds."""
    caplog.set_level(logging.INFO)
    store = pg_world.store
    with store.transaction() as tx:
        store.set_meta(tx, "probe", 0)
    row_locked = threading.Event()
    other_done = threading.Event()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with pg_server.admin(pg_database) as conn:
                conn.execute("BEGIN")
                conn.execute("SET LOCAL deadlock_timeout = '20s'")  # the job's side detects it
                conn.execute("SELECT value FROM meta WHERE key = 'probe' FOR UPDATE")
                row_locked.set()
                with pg_server.admin(pg_database) as watch:
                    for _ in range(200):  # until the job's transaction waits for the row
                        row = watch.execute(
                            "SELECT count(*) FROM pg_locks WHERE NOT granted AND"
                            " locktype = 'transactionid'"
                        ).fetchone()
                        if row and row[0]:
                            break
                        time.sleep(0.05)
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_db.WRITE_LOCK,))
                conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            other_done.set()

    calls = 0

    def job(ctx: JobContext) -> JobResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            threading.Thread(target=other, name="other-session").start()
            assert row_locked.wait(10)
        with ctx.store.transaction() as tx:
            ctx.store.set_meta(tx, "probe", calls)
        return JobResult("probe", {"written": 1})

    worker = Worker(pg_world.ctx, [Job("probe", job, 30)])
    result = worker.run_job(worker.jobs[0])
    assert other_done.wait(30)
    assert errors == []
    assert result is not None
    assert result.counts["written"] == 1
    assert calls == 2
    (retry,) = events(caplog, "store.conflict job=probe retry=1/3")
    assert "deadlock" in retry
    assert events(caplog, "job.failed") == []
    (run,) = store.job_runs("probe")
    assert run.ok is True
    assert store.get_meta("probe") == 2


def test_a_serialization_failure_in_a_transaction_is_a_conflict(
    pg_world: World,
) -> None:
    store = pg_world.store

    def conflicting() -> None:
        with store.transaction() as tx:
            store.set_meta(tx, "x", 1)
            raise psycopg.errors.SerializationFailure("could not serialize access")

    with pytest.raises(StoreConflict, match="rolled back"):
        conflicting()
    assert store.get_meta("x") is None


def test_a_serializable_default_of_the_database_does_not_change_the_stores_transactions(
    pg_server: PgServer, pg_database: str, clock: FakeClock
) -> None:
    """With ``default_transaction_isolation = serializable`` on the database, a transaction
    that waited for the write lock took its snapshot before the lock was granted, and its
    update of a row the previous holder changed failed (40001). ``BEGIN`` names READ
    COMMITTED."""
    with pg_server.admin() as conn:
        conn.execute(
            f"ALTER DATABASE \"{pg_database}\" SET default_transaction_isolation = 'serializable'"
        )
    url = pg_server.url(pg_database)
    first, second = PostgresStore(url, clock), PostgresStore(url, clock)
    errors: list[BaseException] = []

    def later() -> None:
        try:
            with second.transaction() as tx:  # waits for ``first``'s write lock
                second.set_meta(tx, "n", 2)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    try:
        shown = second._read("SHOW default_transaction_isolation").fetchone()
        assert shown is not None
        assert shown["default_transaction_isolation"] == "serializable"
        with first.transaction() as tx:
            first.set_meta(tx, "n", 0)
        waiter = threading.Thread(target=later, name="second")
        with first.transaction() as tx:
            first.set_meta(tx, "n", 1)
            waiter.start()
            with pg_server.admin(pg_database) as watch:
                for _ in range(200):
                    row = watch.execute(
                        "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'advisory'"
                    ).fetchone()
                    if row and row[0]:
                        break
                    time.sleep(0.05)
        waiter.join(30)
        assert errors == []
        assert first.get_meta("n") == 2
    finally:
        first.close()
        second.close()


def test_a_conflict_that_keeps_coming_back_is_a_failed_run_after_the_retries(
    pg_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    calls = 0

    def job(ctx: JobContext) -> JobResult:
        nonlocal calls
        calls += 1
        raise StoreConflict("deadlock detected (injected)")

    worker = Worker(pg_world.ctx, [Job("probe", job, 30)])
    assert worker.run_job(worker.jobs[0]) is None
    assert calls == 4
    assert len(events(caplog, "store.conflict")) == 3
    assert len(events(caplog, "job.failed job=probe error=StoreConflict")) == 1
    (run,) = pg_world.store.job_runs("probe")
    assert run.ok is False


def test_a_store_that_refuses_a_read_is_unavailable_not_a_psycopg_error(
    pg_server: PgServer, pg_database: str, clock: FakeClock
) -> None:
    store = PostgresStore(pg_server.url(pg_database), clock)
    try:
        pg_server.stop("fast")
        try:
            with pytest.raises(StoreUnavailable, match="cannot connect"):
                store.count_due(now=clock.now())
            with pytest.raises(StoreUnavailable), store.transaction() as tx:
                store.set_meta(tx, "x", 1)
        finally:
            pg_server.start()
        assert store.get_meta("x") is None  # connected again
    finally:
        store.close()


# -- at start: a refused login, an unreachable server ----------------------------------------


@pytest.mark.parametrize("command", [["run", "--once"], ["check"]])
def test_an_unreachable_server_at_start_is_temporary_and_a_refused_login_is_not(
    capsys: pytest.CaptureFixture[str],
    cli_env: Path,  # noqa: F811
    server: Any,  # noqa: F811
    pg_server: PgServer,
    pg_database: str,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    password = pg_server.app_password
    nowhere = f"postgresql://escalations:{password}@127.0.0.1:{_free_port()}/escalations"
    monkeypatch.setenv("ESCALATIONS_DATABASE_URL", nowhere)
    code, out, err = cli(capsys, *command)
    assert code == 1, (out, err)  # not 78: systemd's Restart=on-failure starts it again
    (line,) = err.splitlines()
    assert "cannot connect" in line
    assert "Connection refused" in line
    assert password not in out + err

    wrong = "not-the-password-42"
    monkeypatch.setenv("ESCALATIONS_DATABASE_URL", pg_server.url(pg_database, password=wrong))
    code, out, err = cli(capsys, *command)
    assert code == 78, (out, err)
    (line,) = err.splitlines()
    assert line.startswith("escalations: ESCALATIONS_DATABASE_URL: postgresql://"), line
    assert "password authentication failed" in line
    assert "the password in ESCALATIONS_DATABASE_URL" in line
    assert wrong not in out + err


def test_a_refused_login_names_the_credential_file_the_password_came_from(
    capsys: pytest.CaptureFixture[str],
    cli_env: Path,  # noqa: F811
    server: Any,  # noqa: F811
    pg_server: PgServer,
    pg_database: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    wrong = "not-the-password-43"
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "database-password").write_text(wrong + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.setenv("ESCALATIONS_DATABASE_URL", pg_server.url(pg_database, password=""))
    code, out, err = cli(capsys, "run", "--once")
    assert code == 78, (out, err)
    (line,) = err.splitlines()
    assert f"the credential file {credentials / 'database-password'}" in line
    assert wrong not in out + err


@pytest.mark.parametrize("as_json", [False, True])
def test_status_says_down_when_the_server_cannot_be_reached(
    capsys: pytest.CaptureFixture[str],
    cli_env: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    as_json: bool,
) -> None:
    nowhere = f"postgresql://escalations:secret-44@127.0.0.1:{_free_port()}/escalations"
    monkeypatch.setenv("ESCALATIONS_DATABASE_URL", nowhere)
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", "https://helpdesk.example")
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", "t" * 20)
    code, out, err = cli(capsys, "status", *(["--json"] if as_json else []))
    assert code == 2, (out, err)  # down (Nagios' CRITICAL), not 1 (degraded)
    assert "secret-44" not in out + err
    if as_json:
        health = json.loads(out)["health"]
        assert (health["code"], health["status"]) == (2, "down")
    else:
        assert out.splitlines()[0].endswith("/escalations cannot be reached")
        assert out.splitlines()[1].startswith("health: down: the store cannot be reached (")
