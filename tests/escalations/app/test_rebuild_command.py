"""``escalations rebuild-state`` (issue 16 #4) on the demo's helpdesk: the demo's scripted day
(``escalations.app.demo``) against the sandbox over real HTTP, the state database lost (or
moved aside by ``--force``), the store rebuilt by the command's code, then the worker: its
next pass makes no write (the sandbox's request log), the report lists no drift it did not
list before, and the timed jobs that follow write no note the lost worker had written."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from escalations.app import demo
from escalations.app.cli import main
from escalations.app.rebuild_command import EX_STORE_EXISTS, StoreExists, run, summary
from escalations.app.wiring import build, build_adapter, open_store
from escalations.clock import FakeClock
from escalations.errors import EX_CONFIG
from escalations.markers import markers_in
from escalations.store.postgres import PostgresStore
from escalations.store.sqlite import SqliteStore
from jobs import reconcile
from tests.pg import PgServer


class _Stop(Exception):
    pass


class _Day(demo._Demo):
    """The demo's day, stopped before the agent's step that starts with ``stop_at``."""

    stop_at = ""

    def agent(self, text: str, action: Any) -> None:
        if self.stop_at and text.startswith(self.stop_at):
            raise _Stop
        super().agent(text, action)


def _writes(requests: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return [r for r in requests if r[0] != "GET" and not r[1].endswith("/search")]


def _markers(sandbox: Any) -> Counter[str]:
    """How many articles in the helpdesk carry each marker."""
    return Counter(
        m.value
        for ticket_id in sandbox.tickets
        for a in sandbox.articles_of(ticket_id)
        for m in markers_in(a["body"])
    )


@pytest.mark.parametrize(
    ("stop_at", "force"),
    [("", True), ("Jane calls Sean", False), ("Friday", False)],
    ids=["the whole day (closed, archived; --force)", "open at level 3", "parked"],
)
def test_after_rebuild_state_on_the_demos_helpdesk_a_pass_writes_nothing(
    tmp_path: Path, stop_at: str, force: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    _Day.stop_at = stop_at
    day = _Day(tmp_path / "state")
    try:
        try:
            day.script()
        except _Stop:
            pass
        day.clock.advance(timedelta(seconds=30))
        day.worker.run_once()
        before = Counter(f.kind for f in reconcile.build_report(day.ctx, day.clock.now()).findings)
        old = {d.slot: (d.done_at is not None, d.missed_at is not None) for d in day.store.duties()}
        day.store.release_lock()
        day.store.close()
        database = day.settings.database_path
        if not force:  # the state database is lost; the archive directory is still there
            for suffix in ("", "-wal", "-shm"):
                database.with_name(database.name + suffix).unlink(missing_ok=True)
        sandbox = day.sandbox
        start = len(sandbox.requests)
        lines: list[str] = []
        made = run(day.settings, day.clock, day.mappings, force=force, progress=lines.append)
        assert _writes(sandbox.requests[start:]) == []  # the rebuild never writes
        assert made.requests == len(sandbox.requests) - start  # requests, not waits
        assert made.escalations == 1
        assert made.left == []
        assert "escalation tickets found" in " ".join(lines)
        assert summary(made)[0].startswith("rebuilt 1 escalations")
        if force:
            assert list(database.parent.glob("escalations.sqlite3.before-rebuild-*"))
        store = open_store(day.settings, day.clock)
        try:
            installation = build(
                day.settings,
                day.clock,
                adapter=build_adapter(day.settings, day.clock),
                store=store,
                mappings=day.mappings,
            )
            shown = _markers(sandbox)
            start = len(sandbox.requests)
            day.clock.advance(timedelta(seconds=30))
            worker = installation.worker()
            assert all(r is not None for r in worker.run_once())
            assert _writes(sandbox.requests[start:]) == []
            after = Counter(
                f.kind for f in reconcile.build_report(installation.ctx, day.clock.now()).findings
            )
            # no drift that was not there before: no kind found more often either
            assert not after - before, f"new drift after the rebuild: {after - before}"
            new = {d.slot: (d.done_at is not None, d.missed_at is not None) for d in store.duties()}
            assert {slot: new[slot] for slot in new if slot in old} == {
                slot: old[slot] for slot in new if slot in old
            }
            for _ in range(16):  # four more hours of timed passes: no note written twice
                day.clock.advance(timedelta(minutes=15))
                assert all(r is not None for r in worker.run_once())
            now_shown = _markers(sandbox)
            # each marker the helpdesk showed before the passes it shows as often still: none
            # written again (it was ``(after - shown) & shown``, empty whatever was written)
            assert {m: now_shown[m] for m in shown} == dict(shown)
            written = [a for t in sandbox.tickets for a in sandbox.articles_of(t)]
            per_marker = Counter(m.value for a in written for m in markers_in(a["body"]))
            assert [m for m, n in per_marker.items() if n > 1] == []
        finally:
            store.close()
    finally:
        day.server.shutdown()


def _store_with_a_run(state: Path) -> Path:
    state.mkdir(parents=True, exist_ok=True)
    clock = FakeClock()
    store = SqliteStore(state / "escalations.sqlite3", clock)
    with store.transaction() as tx:
        store.start_job_run(tx, "sync", clock.now())
    store.close()
    return state / "escalations.sqlite3"


def test_an_existing_store_is_refused_in_one_line_exit_73(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = _store_with_a_run(cli_env)
    assert main(["rebuild-state"]) == EX_STORE_EXISTS
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1
    assert "already holds a store" in err[0]
    assert "--force" in err[0]
    assert database.exists()  # refused: nothing moved


def test_a_store_a_worker_holds_is_not_moved_even_with_force(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = _store_with_a_run(cli_env)
    worker = SqliteStore(database, FakeClock())
    worker.acquire_lock(worker="w1")
    try:
        assert main(["rebuild-state", "--force"]) == 1
    finally:
        worker.release_lock()
        worker.close()
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1
    assert "stop the worker first" in err[0]
    assert database.exists()
    assert not list(cli_env.glob("*.before-rebuild-*"))


def test_osticket_is_refused_in_one_line_exit_78(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK", "osticket")
    code = main(["rebuild-state"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == EX_CONFIG
    assert len(err) == 1
    assert "not built for osticket" in err[0]


def test_the_command_rebuilds_the_demos_store_then_refuses_to_run_again(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``escalations rebuild-state`` itself, as an admin runs it: settings from the
    environment, the real adapter over HTTP to the demo's sandbox, the system clock."""
    _Day.stop_at = ""
    day = _Day(cli_env)
    try:
        day.script()
        day.store.release_lock()
        day.store.close()
        database = day.settings.database_path
        for suffix in ("", "-wal", "-shm"):
            database.with_name(database.name + suffix).unlink(missing_ok=True)
        capsys.readouterr()
        monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", day.server.url)
        monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", day.sandbox.token_of(demo.BOT))
        monkeypatch.setenv("ESCALATIONS_HTTP_REQUESTS_PER_MINUTE", "6000")  # no waiting
        start = len(day.sandbox.requests)
        assert main(["rebuild-state"]) == 0
        out, err = capsys.readouterr()
        assert out.splitlines()[0].startswith("rebuilt 1 escalations (1 closed)")
        assert "rebuild-state: 1 escalation tickets found" in err
        assert _writes(day.sandbox.requests[start:]) == []
        assert main(["rebuild-state"]) == EX_STORE_EXISTS  # rebuilt: a store now
    finally:
        day.server.shutdown()


def test_on_postgresql_the_rebuilt_store_makes_a_pass_with_no_write(
    tmp_path: Path, pg_server: PgServer
) -> None:
    """The same rebuild into a PostgreSQL store (``ESCALATIONS_DATABASE_URL``); there
    ``--force`` moves nothing: a store that holds anything is refused."""
    _Day.stop_at = "Jane calls Sean"
    day = _Day(tmp_path / "state")
    name = pg_server.new_database()
    try:
        with pytest.raises(_Stop):
            day.script()
        day.store.release_lock()
        day.store.close()
        settings = day.settings.model_copy(update={"database_url": pg_server.url(name)})
        made = run(settings, day.clock, day.mappings, progress=lambda line: None)
        assert (made.escalations, made.left) == (1, [])
        store = PostgresStore(settings.database_url, day.clock)
        try:
            installation = build(
                settings,
                day.clock,
                adapter=build_adapter(settings, day.clock),
                store=store,
                mappings=day.mappings,
            )
            start = len(day.sandbox.requests)
            day.clock.advance(timedelta(seconds=30))
            assert all(r is not None for r in installation.worker().run_once())
            assert _writes(day.sandbox.requests[start:]) == []
        finally:
            store.close()
        with pytest.raises(StoreExists, match="empty it first"):
            run(settings, day.clock, day.mappings, force=True, progress=lambda line: None)
    finally:
        day.server.shutdown()
        pg_server.drop_database(name)


def test_an_interrupted_rebuild_is_taken_up_again_without_force(tmp_path: Path) -> None:
    """Stopped half-way (the store marked as a rebuild begun, not finished), the command run
    again goes on into the same store rather than refusing it, and ends as one run would."""
    _Day.stop_at = "Jane calls Sean"
    day = _Day(tmp_path / "state")

    def interrupted(line: str) -> None:
        if line.startswith("replaying the copies"):
            raise KeyboardInterrupt

    try:
        with pytest.raises(_Stop):
            day.script()
        day.store.release_lock()
        day.store.close()
        database = day.settings.database_path
        for suffix in ("", "-wal", "-shm"):
            database.with_name(database.name + suffix).unlink(missing_ok=True)
        with pytest.raises(KeyboardInterrupt):
            run(day.settings, day.clock, day.mappings, progress=interrupted)
        made = run(day.settings, day.clock, day.mappings, progress=lambda line: None)
        assert (made.escalations, made.kept, made.left) == (0, 1, [])
        with pytest.raises(StoreExists):  # finished: a store like any other now
            run(day.settings, day.clock, day.mappings, progress=lambda line: None)
        store = open_store(day.settings, day.clock)
        try:
            installation = build(
                day.settings,
                day.clock,
                adapter=build_adapter(day.settings, day.clock),
                store=store,
                mappings=day.mappings,
            )
            start = len(day.sandbox.requests)
            day.clock.advance(timedelta(seconds=30))
            assert all(r is not None for r in installation.worker().run_once())
            assert _writes(day.sandbox.requests[start:]) == []
        finally:
            store.close()
    finally:
        day.server.shutdown()


def test_a_store_an_interrupted_rebuild_left_is_not_run_on(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Begun and never finished, the store holds part of the escalations: ``run`` and
    ``check`` refuse it in one line naming rebuild-state (exit 78), ``status`` says so (they
    ran on it as if it were whole, and the report listed the tickets it did not know)."""
    from escalations.clock import SystemClock
    from sandbox import ZammadSandbox, serve
    from tests.jobs.conftest import BOT

    sandbox = ZammadSandbox.demo()
    with serve(sandbox, host="127.0.0.1", port=0) as running:
        monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", running.url)
        monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", sandbox.token_of(BOT))
        assert main(["run", "--once"]) == 0
        store = SqliteStore(cli_env / "escalations.sqlite3", SystemClock())
        try:
            with store.transaction() as tx:
                store.set_meta(tx, "rebuild.started", "2026-12-07T10:00:00+00:00")
        finally:
            store.close()
        capsys.readouterr()
        requests = len(sandbox.requests)
        for argv in (["run", "--once"], ["check"]):
            assert main(argv) == EX_CONFIG, argv
            err = [e for e in capsys.readouterr().err.splitlines() if "rebuild" in e]
            assert len(err) == 1, (argv, err)
            assert "a rebuild begun at 2026-12-07T10:00:00+00:00 that never finished" in err[0]
            assert "run `escalations rebuild-state` again to finish it" in err[0]
        assert [r for r in sandbox.requests[requests:] if r[0] != "GET"] == []
        main(["status"])
        out = capsys.readouterr().out
        assert "rebuild: the store holds a rebuild begun at 2026-12-07T10:00:00+00:00" in out
        store = SqliteStore(cli_env / "escalations.sqlite3", SystemClock())
        try:
            with store.transaction() as tx:
                store.set_meta(tx, "rebuild.finished", "2026-12-07T10:30:00+00:00")
        finally:
            store.close()
        assert main(["check"]) == 0
        assert main(["run", "--once"]) == 0
