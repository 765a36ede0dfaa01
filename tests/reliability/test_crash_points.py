"""Crash at every named fault point (``RELIABILITY.md`` §B2–§B4, §B8): the real worker,
``escalations run --once``, runs in a subprocess against a loopback sandbox server and is
killed with ``SIGKILL`` at ``<point>:<kind>:<n>``; a restart without faults must leave exactly
one escalation ticket and exactly one copy of every customer email.

Also the ambiguous write at the socket level: the sandbox applies the POST and the answer is
lost (reset, or silence past the read timeout); the worker must not repeat the POST, and the
next pass must find the object by its marker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from escalations.clock import SystemClock
from escalations.effects.helpdesk import (
    COPY_ARTICLE,
    CREATE_ESCALATION,
    NOTE,
    TAGS,
    UPDATE_TICKET,
    UPDATE_WITH_NOTE,
)
from escalations.faults import POINTS
from escalations.models import EffectState
from escalations.store.sqlite import SqliteStore
from sandbox import LoseResponse, SandboxServer, ZammadSandbox, serve
from tests.reliability.invariants import Report, check_invariants, copy_marker

pytestmark = pytest.mark.crash

ROOT = Path(__file__).resolve().parents[2]
BOT = "escalation-bot"
ALICE = "alice.agent@fused.example"
DUTY_MANAGER = "duty.manager@fused.example"
TITLE = "Broadband down since Monday"
QUIET_TITLE = "HQ VPN outage"
"""A ticket without customer emails: nothing is copied, so nothing else touches its
escalation ticket."""
RUN_TIMEOUT = 60
KINDS = (CREATE_ESCALATION, COPY_ARTICLE, TAGS, UPDATE_WITH_NOTE)
"""The writes of a raise: the note on the original rides on the update that consumes the
flag (``update_with_note``), so no ``note`` or ``update_ticket`` is written there; those are
crashed at in a level change (``LEVEL_KINDS``)."""
LEVEL_KINDS = (NOTE, UPDATE_TICKET, TAGS)
WRITES = ("POST", "PUT", "DELETE")
READ_ONLY_POSTS = ("/api/v1/tickets/search",)


class Installation:
    """A sandbox served on loopback, a state directory, and the worker run as a process."""

    def __init__(
        self, sandbox: ZammadSandbox, server: SandboxServer, state_dir: Path, title: str = TITLE
    ) -> None:
        self.sandbox = sandbox
        self.server = server
        self.state_dir = state_dir
        self.store_path = state_dir / "escalations.sqlite3"
        self.original = next(t for t, v in sandbox.tickets.items() if v["title"] == title)
        self.log: list[str] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.upper().startswith("ESCALATIONS_") and k != "CREDENTIALS_DIRECTORY"
        }
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.update(
            ESCALATIONS_HELPDESK_URL=self.server.url,
            ESCALATIONS_HELPDESK_TOKEN=self.sandbox.token_of(BOT),
            ESCALATIONS_STATE_DIR=str(self.state_dir),
            ESCALATIONS_HTTP_REQUESTS_PER_MINUTE="6000",
            # a killed worker's request is not still running here: recover at once
            ESCALATIONS_WRITE_SETTLE_SECONDS="0",
        )
        env.update(extra)
        return env

    def run(
        self, crash_at: str | None = None, *, at: datetime | None = None, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        """One ``escalations run --once``; with ``crash_at`` it must die by ``SIGKILL``,
        without it it must exit 0."""
        if crash_at is not None:
            extra["ESCALATIONS_TEST_CRASH_AT"] = crash_at
        argv = [sys.executable, "-m", "escalations", "run", "--once"]
        if at is not None:
            argv += ["--at", at.isoformat()]
        proc = subprocess.run(
            argv,
            env=self.env(**extra),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        self.log.append(f"$ {' '.join(argv[3:])} crash_at={crash_at} -> {proc.returncode}")
        self.log.append(proc.stderr)
        expected = -signal.SIGKILL if crash_at is not None else 0
        assert proc.returncode == expected, (
            f"expected exit {expected}, got {proc.returncode}\n" + "\n".join(self.log)
        )
        return proc

    # -- scenario ------------------------------------------------------------------------------
    def flag(self) -> None:
        """What the Escalate macro does on the original ticket."""
        self.sandbox.agent_update(
            self.original,
            ALICE,
            escalation_requested=True,
            escalation_reason="outage_beyond_sla",
            customer_segment="residential",
        )

    def customer_emails(self) -> None:
        """Two more customer emails on the original ticket, one with an attachment."""
        self.sandbox.seed_customer_email(
            self.original,
            "The engineer did not turn up.",
            subject="Re: broadband down",
            attachments=[("photo.txt", "text/plain", b"router lights all red")],
        )
        self.sandbox.seed_customer_email(
            self.original, "Day four. Please call me.", subject="Re: broadband down"
        )

    # -- reading back --------------------------------------------------------------------------
    def escalation_tickets(self) -> list[dict[str, Any]]:
        return [t for t in self.sandbox.tickets.values() if t.get("escalation_key")]

    def customer_messages(self) -> list[dict[str, Any]]:
        return [
            a
            for a in self.sandbox.articles_of(self.original)
            if a["sender"] == "Customer" and a["type"] in ("email", "web")
        ]

    def copies_in(self, ticket_id: int) -> list[dict[str, Any]]:
        return [a for a in self.sandbox.articles_of(ticket_id) if "copied from ticket" in a["body"]]

    def writes(self) -> list[tuple[str, str, int]]:
        return [
            r
            for r in self.sandbox.requests
            if r[0] in WRITES and not (r[0] == "POST" and r[1] in READ_ONLY_POSTS)
        ]

    def effects(self) -> list[Any]:
        store = SqliteStore(self.store_path, SystemClock())
        try:
            return store.effects()
        finally:
            store.close()

    def check(self) -> Report:
        """The §B4 invariants, then exactly one escalation ticket and one copy per email."""
        try:
            report = check_invariants(self.sandbox, self.store_path)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker runs ---\n" + "\n".join(self.log)) from None
        tickets = self.escalation_tickets()
        assert len(tickets) == 1, f"{len(tickets)} escalation tickets: {tickets}"
        esc = tickets[0]
        sources = self.customer_messages()
        copies = self.copies_in(esc["id"])
        assert len(copies) == len(sources), (len(copies), len(sources))
        for source in sources:
            marker = copy_marker(esc["escalation_key"], source["id"])
            holders = [c for c in copies if marker in c["body"]]
            assert len(holders) == 1, f"article {source['id']}: {len(holders)} copies"
            names = [a["filename"] for a in holders[0]["attachments"]]
            assert names == [a["filename"] for a in source["attachments"]]
        original = self.sandbox.ticket(self.original)
        assert not original["escalation_requested"], "the flag was not consumed"
        assert "escalated" in self.sandbox.tags_of(self.original)
        return report

    def recover(self) -> Report:
        """One clean pass, the invariants; then a second pass that must write nothing."""
        self.run()
        report = self.check()
        before = len(self.writes())
        self.run()
        assert self.writes()[before:] == [], "a second clean pass wrote to the helpdesk"
        self.check()
        return report


@pytest.fixture
def install(tmp_path: Path) -> Iterator[Installation]:
    sandbox = ZammadSandbox.demo()
    with serve(sandbox) as server:
        yield Installation(sandbox, server, tmp_path / "state")


@pytest.fixture
def quiet_install(tmp_path: Path) -> Iterator[Installation]:
    sandbox = ZammadSandbox.demo()
    with serve(sandbox) as server:
        yield Installation(sandbox, server, tmp_path / "state", QUIET_TITLE)


# -- crash at each point x each effect kind, during escalation creation and copying -------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("point", POINTS)
def test_crash_while_escalating(install: Installation, point: str, kind: str) -> None:
    install.customer_emails()  # the history to copy: three customer emails, one attachment
    install.flag()
    install.run(f"{point}:{kind}:1")
    install.recover()
    if point == "effect.sent" and kind in (CREATE_ESCALATION, COPY_ARTICLE, UPDATE_WITH_NOTE):
        assert f"effect.found kind={kind}" in "\n".join(install.log), "not found by marker"
    notes = [
        a for a in install.sandbox.articles_of(install.original) if a["subject"] == "Escalated"
    ]
    assert len(notes) == 1, f"{len(notes)} notes on the original"


@pytest.mark.parametrize("kind", LEVEL_KINDS)
@pytest.mark.parametrize("point", POINTS)
def test_crash_while_changing_the_level(quiet_install: Installation, point: str, kind: str) -> None:
    """An agent raises the level: the level tags, the ticket's title and owner, the level
    note; a crash at each step still gives exactly one level note."""
    install, sb = quiet_install, quiet_install.sandbox
    install.flag()
    install.run()
    (esc,) = install.escalation_tickets()
    sb.agent_update(esc["id"], ALICE, escalation_level="2")
    install.run(f"{point}:{kind}:1")
    install.recover()
    if point == "effect.sent" and kind == NOTE:
        assert f"effect.found kind={kind}" in "\n".join(install.log), "not found by marker"
    assert sb.ticket(esc["id"])["owner"] == DUTY_MANAGER
    level_notes = [a for a in sb.articles_of(esc["id"]) if a["subject"] == "Level 2"]
    assert len(level_notes) == 1


@pytest.mark.parametrize("point", POINTS)
def test_crash_at_the_second_copy(install: Installation, point: str) -> None:
    install.customer_emails()
    install.flag()
    install.run(f"{point}:{COPY_ARTICLE}:2")
    report = install.recover()
    assert len(report.copies) == 3


@pytest.mark.parametrize("point", POINTS)
def test_crash_while_copying_a_later_email(install: Installation, point: str) -> None:
    install.flag()
    install.run()
    install.check()
    install.customer_emails()
    install.run(f"{point}:{COPY_ARTICLE}:1")
    install.recover()


# -- ambiguous writes: applied by the helpdesk, answer lost ------------------------------------

LOST = ["reset", "timeout"]
"""``reset``: the connection is reset after the write is applied; ``timeout``: the server says
nothing until the worker's read timeout (1 s here) gives up."""


def _lose_answer(method: str, path: str, mode: str) -> LoseResponse:
    return LoseResponse(method=method, path=path, mode=mode, hold=10.0)  # type: ignore[arg-type]


def _later() -> datetime:
    """An instant past the executor's back-off for a first ambiguous attempt."""
    return datetime.now(UTC) + timedelta(minutes=10)


@pytest.mark.parametrize("mode", LOST)
def test_lost_answer_to_the_create_is_not_retried_blindly(install: Installation, mode: str) -> None:
    install.flag()
    install.sandbox.faults.add(_lose_answer("POST", r"^/api/v1/tickets$", mode))
    install.run(ESCALATIONS_HTTP_READ_TIMEOUT="1")
    assert install.sandbox.faults.fired == [("LoseResponse", "POST", "/api/v1/tickets")]
    creates = [w for w in install.writes() if w[:2] == ("POST", "/api/v1/tickets")]
    assert len(creates) == 1, "the create was repeated"
    assert len(install.escalation_tickets()) == 1  # applied, though the worker never heard
    (effect,) = [e for e in install.effects() if e.kind == CREATE_ESCALATION]
    assert effect.state is EffectState.IN_FLIGHT
    assert "AmbiguousWrite" in (effect.last_error or "")

    seen = len(install.sandbox.requests)
    install.run(at=_later())
    later = install.sandbox.requests[seen:]
    assert ("POST", "/api/v1/tickets", 201) not in later, "the create was repeated"
    assert any(m == "GET" and p == "/api/v1/links" for m, p, _ in later), "no look by marker"
    (effect,) = [e for e in install.effects() if e.kind == CREATE_ESCALATION]
    ticket = install.escalation_tickets()[0]
    assert effect.state is EffectState.DONE
    assert effect.remote_id == f"{ticket['id']}#{ticket['number']}"
    install.check()


@pytest.mark.parametrize("mode", LOST)
def test_lost_answer_to_a_copy_is_not_retried_blindly(install: Installation, mode: str) -> None:
    install.flag()
    install.run()
    install.check()
    install.sandbox.seed_customer_email(
        install.original,
        "The engineer did not turn up.",
        subject="Re: broadband down",
        attachments=[("photo.txt", "text/plain", b"router lights all red")],
    )
    install.sandbox.faults.add(_lose_answer("POST", r"^/api/v1/ticket_articles$", mode))
    seen = len(install.writes())
    install.run(ESCALATIONS_HTTP_READ_TIMEOUT="1")
    assert install.sandbox.faults.fired == [("LoseResponse", "POST", "/api/v1/ticket_articles")]
    assert install.writes()[seen:] == [("POST", "/api/v1/ticket_articles", 201)]
    (effect,) = [
        e for e in install.effects() if e.kind == COPY_ARTICLE and e.state is not EffectState.DONE
    ]
    assert effect.state is EffectState.IN_FLIGHT

    esc = install.escalation_tickets()[0]
    copies = install.copies_in(esc["id"])  # the lost answer's copy was applied
    effects = {e.id for e in install.effects()}
    install.run(at=_later())
    # ten minutes on, the communication plan may write a reminder (a morning call due by
    # 12:00): only copies count here
    assert install.copies_in(esc["id"]) == copies, "the copy was repeated"
    assert [
        e.kind for e in install.effects() if e.id not in effects and e.kind == COPY_ARTICLE
    ] == []
    effect = next(e for e in install.effects() if e.id == effect.id)
    assert effect.state is EffectState.DONE
    assert effect.remote_id == str(copies[-1]["id"])
    install.check()


@pytest.mark.parametrize("mode", LOST)
def test_lost_answer_to_the_update_with_the_note_is_not_retried_blindly(
    install: Installation, mode: str
) -> None:
    """The PUT that consumes the flag carries the note on the original: applied, its answer
    lost, it is not sent again; the next pass finds the note by its marker."""
    install.flag()
    put = rf"^/api/v1/tickets/{install.original}$"
    install.sandbox.faults.add(_lose_answer("PUT", put, mode))
    install.run(ESCALATIONS_HTTP_READ_TIMEOUT="1")
    path = f"/api/v1/tickets/{install.original}"
    assert install.sandbox.faults.fired == [("LoseResponse", "PUT", path)]
    assert [w for w in install.writes() if w[:2] == ("PUT", path)] == [("PUT", path, 200)]
    (effect,) = [e for e in install.effects() if e.kind == UPDATE_WITH_NOTE]
    assert effect.state is EffectState.IN_FLIGHT
    assert "AmbiguousWrite" in (effect.last_error or "")

    seen = len(install.sandbox.requests)
    install.run(at=_later())
    later = install.sandbox.requests[seen:]
    assert ("PUT", path, 200) not in later, "the update with the note was repeated"
    by_ticket = f"/api/v1/ticket_articles/by_ticket/{install.original}"
    assert ("GET", by_ticket, 200) in later, "no look by marker"
    (effect,) = [e for e in install.effects() if e.kind == UPDATE_WITH_NOTE]
    (note,) = [
        a for a in install.sandbox.articles_of(install.original) if a["subject"] == "Escalated"
    ]
    assert effect.state is EffectState.DONE
    assert effect.remote_id == str(note["id"])
    install.check()


# -- the recovery window: the escalation ticket exists, the store does not know it yet ---------


@pytest.mark.parametrize("fault", ["crash", "lost-answer"])
def test_an_agent_change_before_the_create_commits_is_not_lost(
    quiet_install: Installation, fault: str
) -> None:
    """Between the applied POST and its commit (a crash at effect.sent, or a lost answer), an
    agent raises the level on the new escalation ticket. The pass that recovers the create
    polls that version first; it must be handled once the ticket is known, not marked seen."""
    install, sb = quiet_install, quiet_install.sandbox
    install.flag()
    if fault == "crash":
        install.run(f"effect.sent:{CREATE_ESCALATION}:1")
    else:
        sb.faults.add(_lose_answer("POST", r"^/api/v1/tickets$", "reset"))
        install.run()
    (esc,) = install.escalation_tickets()
    sb.agent_update(esc["id"], ALICE, escalation_level="2")
    for _ in range(2):  # recover the create; then handle the version it had held back
        install.run(at=_later() if fault == "lost-answer" else None)
    ticket = sb.ticket(esc["id"])
    assert ticket["owner"] == DUTY_MANAGER, "the level change was lost"
    assert set(sb.tags_of(esc["id"])) == {"escalation", "escalation-l2"}
    level_notes = [a for a in sb.articles_of(esc["id"]) if a["subject"] == "Level 2"]
    assert len(level_notes) == 1
    install.check()


# -- the harness checks itself -------------------------------------------------------------------


def test_the_invariants_catch_what_they_are_for(install: Installation) -> None:
    install.flag()
    install.run()
    install.check()
    sb = install.sandbox
    (esc,) = install.escalation_tickets()
    first_copy = install.copies_in(esc["id"])[0]
    sb.agent_article(esc["id"], BOT, first_copy["body"])  # a second copy of one email
    other = next(t for t in sb.tickets if t not in (install.original, esc["id"]))
    sb.agent_update(other, ALICE, escalation_key=esc["escalation_key"])  # a second ticket
    store = SqliteStore(install.store_path, SystemClock())
    try:
        with store.transaction() as tx:
            store.insert_effect(
                tx, kind=NOTE, key="left:over", marker=copy_marker("x", 1), payload_json="{}",
                payload_sha256="0" * 64, payload_version=1, escalation_id=None, after=None,
                    at=SystemClock().now(),
            )  # fmt: skip
    finally:
        store.close()
    with pytest.raises(AssertionError) as caught:
        check_invariants(sb, install.store_path)
    text = str(caught.value)
    assert "inv 1: escalation zammad:ticket:1:1 (open) is carried by 2 tickets" in text
    source = install.customer_messages()[0]["id"]
    assert f"inv 2: customer article {source} (ticket {install.original}" in text
    assert "has 2 copies" in text
    assert "inv 3: effect" in text
    assert "left:over is pending" in text
