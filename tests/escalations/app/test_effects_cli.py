"""``escalations effects list`` and ``escalations effects retry`` (issue 10 #5): the admin's
replay of writes the helpdesk refused.

The failed effects are made for real: the CLI runs the worker (``run --once``) against the
demo sandbox on a loopback port, with a sandbox fault refusing one write. Retrying only puts
the effect back in the queue; the next ``run --once`` writes it, and it is written once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from escalations.app.cli import main
from escalations.clock import FakeClock
from escalations.markers import marker_for
from escalations.models import EffectState
from escalations.store.sqlite import SqliteStore
from sandbox import SandboxServer, ServerError, ZammadSandbox, serve

BOT = "escalation-bot"
ALICE = "alice.agent@fused.example"
ARTICLES = "/api/v1/ticket_articles$"
COPY_TEXT = "Still no line, fourth day now."


@pytest.fixture(autouse=True)
def env(cli_env: Path) -> Path:
    """Every CLI test runs in ``cli_env`` (conftest.py): no caller settings, its own state."""
    return cli_env


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


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("escalations: ")]


def run_once(capsys: pytest.CaptureFixture[str], *extra: str) -> None:
    code, _, err = cli(capsys, "run", "--once", *extra)
    assert code == 0, err


def escalate(capsys: pytest.CaptureFixture[str], sandbox: ZammadSandbox) -> tuple[int, int]:
    """Flag the demo's broadband ticket and run a pass: (original, escalation ticket)."""
    (original,) = [
        i for i, t in sandbox.tickets.items() if t["title"] == "Broadband down since Monday"
    ]
    sandbox.agent_update(original, ALICE, escalation_requested=True)
    run_once(capsys)
    (escalation,) = [i for i, t in sandbox.tickets.items() if t.get("escalation_key")]
    return original, escalation


def copies_of(sandbox: ZammadSandbox, ticket_id: int, text: str) -> int:
    return sum(text in str(a["body"]) for a in sandbox.articles_of(ticket_id))


def failed_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if " failed " in line]


def effect_id(line: str) -> str:
    return line.split(" ", 1)[0]


# -- list ---------------------------------------------------------------------------------


def test_list_before_the_worker_has_run_says_so_and_makes_no_store(
    capsys: pytest.CaptureFixture[str], env: Path
) -> None:
    assert cli(capsys, "effects", "list") == (0, "no effects\n", "")
    assert cli(capsys, "effects", "list", "--failed") == (0, "no failed effects\n", "")
    assert not (env / "escalations.sqlite3").exists()


def test_list_shows_each_effect_newest_change_last(
    capsys: pytest.CaptureFixture[str], env: Path
) -> None:
    clock = FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    env.mkdir()
    store = SqliteStore(env / "escalations.sqlite3", clock)
    try:
        ids = []
        for key in ("first", "second"):
            with store.transaction() as tx:
                ids.append(
                    store.insert_effect(
                        tx,
                        kind="note",
                        key=key,
                        marker=str(marker_for("note", key)),
                        payload_json="{}",
                        payload_sha256="0" * 64,
                        payload_version=1,
                        escalation_id=None,
                        after=None,
                        at=clock.now(),
                    )
                )
        clock.advance(timedelta(minutes=5))
        with store.transaction() as tx:  # the older effect changes last
            store.finish_effect(
                tx, ids[0], EffectState.FAILED, last_error="Rejected: 422\nbody was\ttoo long"
            )
    finally:
        store.close()

    code, out, err = cli(capsys, "effects", "list")
    assert code == 0, err
    assert out.splitlines() == [
        f"{ids[1]} note pending attempts=0 escalation=- updated=2026-12-01T09:00:00+00:00 error=-",
        f"{ids[0]} note failed attempts=0 escalation=- updated=2026-12-01T09:05:00+00:00 "
        "error=Rejected: 422 body was too long",
    ]
    code, out, _ = cli(capsys, "effects", "list", "--failed")
    assert [effect_id(line) for line in out.splitlines()] == [str(ids[0])]


# -- retry, for real through the sandbox --------------------------------------------------


def test_a_refused_copy_is_listed_retried_and_then_written_once(
    capsys: pytest.CaptureFixture[str], server: SandboxServer
) -> None:
    sandbox = server.sandbox
    original, escalation = escalate(capsys, sandbox)
    sandbox.seed_customer_email(original, COPY_TEXT, subject="Re: broadband")
    sandbox.faults.add(ServerError(method="POST", path=ARTICLES, times=1, status=422))
    run_once(capsys)
    assert copies_of(sandbox, escalation, COPY_TEXT) == 0

    code, out, err = cli(capsys, "effects", "list", "--failed")
    assert code == 0, err
    (line,) = out.splitlines()
    assert re.fullmatch(
        r"\d+ copy_article failed attempts=1 escalation=\d+ "
        r"updated=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d error=Rejected: .*422.*",
        line,
    ), line
    failed = effect_id(line)
    code, out, _ = cli(capsys, "effects", "list")
    assert out.splitlines()[-1] == line  # the newest change is the failure
    assert len(out.splitlines()) > 1

    sent = len(sandbox.requests)
    code, out, err = cli(capsys, "effects", "retry", failed)
    assert (code, err) == (0, "")
    assert out == f"effect {failed}: copy_article queued for the worker's next pass\n"
    assert len(sandbox.requests) == sent, "retry itself must not talk to the helpdesk"
    assert copies_of(sandbox, escalation, COPY_TEXT) == 0
    assert cli(capsys, "effects", "list", "--failed")[1] == "no failed effects\n"
    code, out, _ = cli(capsys, "effects", "list")
    assert f"{failed} copy_article pending " in out

    run_once(capsys)
    assert copies_of(sandbox, escalation, COPY_TEXT) == 1
    run_once(capsys)
    assert copies_of(sandbox, escalation, COPY_TEXT) == 1
    code, out, _ = cli(capsys, "effects", "list")
    assert f"{failed} copy_article done " in out


def test_retry_all_failed_requeues_every_failed_effect(
    capsys: pytest.CaptureFixture[str], server: SandboxServer
) -> None:
    sandbox = server.sandbox
    original, escalation = escalate(capsys, sandbox)
    texts = [f"{COPY_TEXT} ({n})" for n in range(2)]
    for text in texts:
        sandbox.seed_customer_email(original, text)
    sandbox.faults.add(ServerError(method="POST", path=ARTICLES, times=2, status=422))
    run_once(capsys)
    code, out, _ = cli(capsys, "effects", "list", "--failed")
    ids = [effect_id(line) for line in out.splitlines()]
    assert len(ids) == 2, out

    code, out, err = cli(capsys, "effects", "retry", "--all-failed")
    assert (code, err) == (0, "")
    assert [effect_id(line.removeprefix("effect ")) for line in out.splitlines()] == [
        f"{i}:" for i in ids
    ]
    run_once(capsys)
    assert [copies_of(sandbox, escalation, text) for text in texts] == [1, 1]
    assert cli(capsys, "effects", "retry", "--all-failed") == (0, "no failed effects\n", "")


def test_retry_reports_each_id_it_did_not_retry_and_exits_1(
    capsys: pytest.CaptureFixture[str], server: SandboxServer
) -> None:
    sandbox = server.sandbox
    original, escalation = escalate(capsys, sandbox)
    sandbox.seed_customer_email(original, COPY_TEXT)
    sandbox.faults.add(ServerError(method="POST", path=ARTICLES, times=1, status=422))
    run_once(capsys)
    _, out, _ = cli(capsys, "effects", "list")
    (failed,) = [effect_id(line) for line in failed_lines(out)]
    (done, *_) = [effect_id(line) for line in out.splitlines() if " done " in line]

    code, out, err = cli(capsys, "effects", "retry", "999999", done, failed)
    assert code == 1
    assert error_lines(err) == [
        "escalations: effect 999999: not retried: no such effect",
        f"escalations: effect {done}: not retried: it is done, not failed",
    ]
    assert out == f"effect {failed}: copy_article queued for the worker's next pass\n"
    assert "Traceback" not in err
    run_once(capsys)
    assert copies_of(sandbox, escalation, COPY_TEXT) == 1


def test_retry_a_write_that_may_have_been_applied_looks_for_it_first(
    capsys: pytest.CaptureFixture[str], server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy reaches Zammad but the answer is a 500 (ambiguous); the look for it on the
    next pass is refused (403), so the effect fails although the copy exists. A retry must
    find that copy by its marker, not write a second one."""
    monkeypatch.setenv("ESCALATIONS_WRITE_SETTLE_SECONDS", "0")
    sandbox = server.sandbox
    original, escalation = escalate(capsys, sandbox)
    sandbox.seed_customer_email(original, COPY_TEXT)
    sandbox.faults.add(ServerError(method="POST", path=ARTICLES, status=500, apply=True))
    run_once(capsys)
    assert copies_of(sandbox, escalation, COPY_TEXT) == 1
    # refused for the poll's read of the escalation ticket and then for the executor's look
    sandbox.faults.add(
        ServerError(method="GET", path="/ticket_articles/by_ticket/", status=403, times=5)
    )
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="seconds")
    run_once(capsys, "--at", later)
    _, out, _ = cli(capsys, "effects", "list", "--failed")
    (failed,) = [effect_id(line) for line in out.splitlines()]
    sandbox.faults.clear()  # the helpdesk lets the worker read again

    assert cli(capsys, "effects", "retry", failed)[0] == 0
    run_once(capsys, "--at", later)
    assert copies_of(sandbox, escalation, COPY_TEXT) == 1
    _, out, _ = cli(capsys, "effects", "list")
    assert f"{failed} copy_article done " in out


def test_a_refused_escalation_ticket_is_not_created_for_an_ended_escalation(
    capsys: pytest.CaptureFixture[str], server: SandboxServer
) -> None:
    """A refused create ends its escalation and clears the flag; replaying it would create a
    ticket that no open escalation owns. The admin is told to flag the original again."""
    sandbox = server.sandbox
    (original,) = [
        i for i, t in sandbox.tickets.items() if t["title"] == "Broadband down since Monday"
    ]
    sandbox.agent_update(original, ALICE, escalation_requested=True)
    sandbox.faults.add(ServerError(method="POST", path="/api/v1/tickets$", times=1, status=422))
    run_once(capsys)
    _, out, _ = cli(capsys, "effects", "list", "--failed")
    (line,) = out.splitlines()
    assert " create_escalation failed " in line
    failed = effect_id(line)
    tickets = len(sandbox.tickets)

    code, out, err = cli(capsys, "effects", "retry", failed)
    assert (code, out) == (1, "")
    (message,) = error_lines(err)
    assert message.startswith(f"escalations: effect {failed}: not retried: its escalation ")
    assert message.endswith("flag the original ticket again to raise a new escalation")
    run_once(capsys)
    assert len(sandbox.tickets) == tickets
    assert cli(capsys, "effects", "list", "--failed")[1] == out_of(line)


def out_of(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


# -- usage --------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [[], ["--all-failed", "3"]])
def test_retry_needs_ids_or_all_failed(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["effects", "retry", *argv])
    assert exit_info.value.code == 64  # EX_USAGE: never status's 2 (down)
    assert "give effect IDs or --all-failed" in capsys.readouterr().err


def test_retry_without_a_store(capsys: pytest.CaptureFixture[str], env: Path) -> None:
    code, out, err = cli(capsys, "effects", "retry", "4")
    assert (code, out) == (1, "")
    assert error_lines(err) == [
        "escalations: effect 4: not retried: no such effect (the worker has not run)"
    ]
    assert not (env / "escalations.sqlite3").exists()
