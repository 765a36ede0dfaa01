"""``world``: the sandbox, the real Zammad adapter talking to it through ``responses``, a store
in ``tmp_path`` and the wired job context — a whole installation in a few lines."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses

from connector.http import HttpClient, HttpPolicy
from connector.zammad import ZammadAdapter
from escalations.app.wiring import Installation, build
from escalations.clock import FakeClock
from escalations.mappings import Mappings, load_mappings
from escalations.settings import Settings, shipped_mappings_dir
from escalations.store.sqlite import SqliteStore
from jobs.context import JobContext, JobResult
from jobs.worker import Worker
from sandbox import ZammadSandbox, mount

BASE_URL = "https://zammad.test"
BOT = "escalation-bot"
ALICE = "alice.agent@fused.example"
BOB = "bob.agent@fused.example"
DUTY_MANAGER = "duty.manager@fused.example"
SUPERVISOR = "cs.supervisor@fused.example"
LLOYD = "lloyd.foley@jt.example"
SARA = "sara.mccarthy@jt.example"
PLACEHOLDER = "escalations-internal@example.invalid"
RESIDENTIAL = "sean.walsh@residential.example"
READS = ("GET", "POST /api/v1/tickets/search")


@dataclass
class World:
    sandbox: ZammadSandbox
    installation: Installation
    clock: FakeClock
    rsps: responses.RequestsMock
    results: list[JobResult] = field(default_factory=list)
    twice: bool = True
    """Run every ``sync`` pass a second time at the same instant and fail if that writes."""

    @property
    def ctx(self) -> JobContext:
        return self.installation.ctx

    @property
    def store(self) -> SqliteStore:
        return self.ctx.store  # type: ignore[return-value]

    @property
    def worker(self) -> Worker:
        return self.installation.worker()

    def sync(self, *, advance: timedelta = timedelta(seconds=30)) -> JobResult:
        """One sync tick as the worker runs it (poll, writes, copy, writes), after moving the
        clock on by one poll interval; the counts of both jobs in one result."""
        self.clock.advance(advance)
        merged = JobResult("sync")
        for result in self.worker.run_once():
            if result is None:
                raise AssertionError("a job of the pass failed; see the log")
            merged.merge(result)
        self.results.append(merged)
        if self.twice:
            self._again_writes_nothing()
        return merged

    def _again_writes_nothing(self) -> None:
        """The same pass at the same instant must find nothing more to write."""
        before = len(self.writes())
        for result in self.worker.run_once():
            if result is None:
                raise AssertionError("a repeated pass failed; see the log")
        again = self.writes()[before:]
        assert again == [], f"a second pass at {self.clock.now()} wrote again: {again}"
        # The frozen clock would stamp the scenario's next helpdesk change with the instant
        # of the worker's last write; Zammad's clock has moved on by then.
        self.clock.advance(timedelta(milliseconds=1))

    def writes(self) -> list[str]:
        """Every write request so far (searches are reads)."""
        return [c for c in self.http_calls() if not c.startswith(READS)]

    def ticket_by_title(self, title: str) -> int:
        for ticket_id, ticket in self.sandbox.tickets.items():
            if ticket["title"] == title:
                return ticket_id
        raise KeyError(title)

    def flag(self, ticket_id: int, *, by: str = ALICE, **extra: Any) -> None:
        """What the Escalate macro does on the original ticket."""
        attrs = {
            "escalation_requested": True,
            "escalation_reason": "outage_beyond_sla",
            "customer_segment": "residential",
            "escalation_callback_at": "2026-12-01T15:00:00.000Z",
        }
        attrs.update(extra)
        self.sandbox.agent_update(ticket_id, by, **attrs)

    def escalation_tickets(self) -> list[dict[str, Any]]:
        return [t for t in self.sandbox.tickets.values() if t.get("escalation_key")]

    def the_escalation_ticket(self) -> dict[str, Any]:
        tickets = self.escalation_tickets()
        assert len(tickets) == 1, f"expected one escalation ticket, found {len(tickets)}"
        return tickets[0]

    def copies_in(self, ticket_id: int) -> list[dict[str, Any]]:
        return [a for a in self.sandbox.articles_of(ticket_id) if "copied from ticket" in a["body"]]

    def http_calls(self) -> list[str]:
        return [
            f"{c.request.method} {(c.request.path_url or '').split('?')[0]}"
            for c in self.rsps.calls
        ]


class SkewedClock:
    """The helpdesk's clock: the worker's, off by ``offset`` (negative: behind)."""

    def __init__(self, clock: FakeClock, offset: timedelta) -> None:
        self._clock, self.offset = clock, offset

    def now(self) -> datetime:
        return self._clock.now() + self.offset

    def monotonic(self) -> float:
        return self._clock.monotonic()

    def sleep(self, seconds: float) -> None:
        self._clock.sleep(seconds)


def make_world(
    tmp_path: Path,
    clock: FakeClock,
    rsps: responses.RequestsMock,
    mappings: Mappings | None,
    *,
    helpdesk_clock_offset: timedelta = timedelta(0),
) -> World:
    helpdesk_clock = SkewedClock(clock, helpdesk_clock_offset) if helpdesk_clock_offset else clock
    sandbox = ZammadSandbox.demo(clock=helpdesk_clock)
    mount(sandbox, rsps, BASE_URL)
    token = sandbox.token_of(BOT)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, helpdesk_url=BASE_URL, helpdesk_token=token, state_dir=tmp_path
    )
    policy = HttpPolicy(requests_per_minute=6000, burst=1000)
    client = HttpClient(BASE_URL, {"Authorization": f"Token token={token}"}, policy, clock)
    adapter = ZammadAdapter(client, clock=clock)
    store = SqliteStore(tmp_path / "escalations.sqlite3", clock)
    installation = build(
        settings,
        clock,
        adapter=adapter,
        store=store,
        mappings=mappings or load_mappings(shipped_mappings_dir()),
    )
    return World(sandbox=sandbox, installation=installation, clock=clock, rsps=rsps)


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        w = make_world(tmp_path, clock, rsps, None)
        yield w
        w.store.close()
