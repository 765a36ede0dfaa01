"""One installation under test: the sandbox served on a loopback socket (every answer delayed
by the injected latency), the real Zammad adapter over real HTTP, a SQLite store in a working
directory and the worker wired as ``escalations run`` wires it. Requests are counted from the
sandbox's own request log, so nothing on the client side can hide one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from connector.http import HttpClient, HttpPolicy, build_session
from connector.zammad import ZammadAdapter
from escalations.app.wiring import Installation, build
from escalations.clock import Clock, FakeClock
from escalations.mappings import load_mappings
from escalations.settings import Settings, shipped_mappings_dir
from escalations.store.sqlite import SqliteStore
from jobs.worker import Worker
from sandbox import SandboxServer, ZammadSandbox, serve

BOT = "escalation-bot"
ALICE = "alice.agent@fused.example"
TEMPLATE_TITLE = "Broadband down since Monday"
"""The demo ticket every seeded escalation is cloned from."""
READ_POSTS = frozenset({"/api/v1/tickets/search"})
BENCH_RATE = 6000
"""Requests per minute the in-process worker may make (the setting's maximum): the figures
count requests and time our code, not the default 60/minute budget."""


def is_write(method: str, path: str) -> bool:
    return method in ("POST", "PUT", "DELETE", "PATCH") and path not in READ_POSTS


@dataclass(frozen=True)
class Counted:
    """The requests the sandbox answered during one measured step."""

    calls: tuple[tuple[str, str], ...]
    wall: float
    cpu: float
    """CPU seconds of the calling thread (the worker's own code, not the server's)."""

    @property
    def requests(self) -> int:
        return len(self.calls)

    @property
    def writes(self) -> int:
        return sum(1 for method, path in self.calls if is_write(method, path))

    def __add__(self, other: Counted) -> Counted:
        return Counted(self.calls + other.calls, self.wall + other.wall, self.cpu + other.cpu)


class Rig:
    """The sandbox (demo data) on loopback and a worker wired to it, in ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        *,
        latency: float,
        clock: Clock | None = None,
        poll_interval: int = 30,
        rate: int = BENCH_RATE,
        synchronous: str | None = None,
    ) -> None:
        """``synchronous`` (``None``: as shipped) is a what-if for measuring only: SQLite's
        ``synchronous`` pragma on the worker's connection, changed on this rig's objects (the
        product's code is not touched)."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.clock: Clock = clock or FakeClock()
        self.sandbox = ZammadSandbox.demo(clock=self.clock)
        self.server: SandboxServer = serve(self.sandbox, latency=latency)
        self.token = self.sandbox.token_of(BOT)
        self.settings = Settings(
            _env_file=None,
            helpdesk_url=self.server.url,
            helpdesk_token=self.token,
            state_dir=workdir,
            poll_interval_seconds=poll_interval,
            http_requests_per_minute=rate,
        )
        policy = HttpPolicy(requests_per_minute=rate, burst=min(1000, rate))
        session = build_session(policy)
        client = HttpClient(
            self.server.url,
            {"Authorization": f"Token token={self.token}"},
            policy,
            self.clock,
            session=session,
        )
        self.adapter = ZammadAdapter(client, clock=self.clock)
        self.store_path = workdir / "escalations.sqlite3"
        self.store = SqliteStore(self.store_path, self.clock)
        if synchronous is not None:
            self.store._conn().execute(f"PRAGMA synchronous={synchronous}")  # noqa: SLF001
        self.installation: Installation = build(
            self.settings,
            self.clock,
            adapter=self.adapter,
            store=self.store,
            mappings=load_mappings(shipped_mappings_dir()),
        )
        self.worker: Worker = self.installation.worker()

    # -- time -----------------------------------------------------------------------------------

    def advance(self, delta: timedelta) -> None:
        if isinstance(self.clock, FakeClock):
            self.clock.advance(delta)

    def now(self) -> datetime:
        return self.clock.now()

    # -- measuring ------------------------------------------------------------------------------

    def measure(self, step: object) -> Counted:
        """Run ``step()`` and count the requests the sandbox answered meanwhile."""
        before = len(self.sandbox.requests)
        wall, cpu = time.perf_counter(), time.thread_time()
        step()  # type: ignore[operator]
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        calls = tuple((m, p) for m, p, _ in self.sandbox.requests[before:])
        return Counted(calls, wall, cpu)

    def run_pass(self, *, advance: timedelta = timedelta(seconds=5)) -> Counted:
        """One worker pass (every timed job, each followed by the effects step), after moving
        the clock on by ``advance``."""
        self.advance(advance)

        def step() -> None:
            for result in self.worker.run_once():
                if result is None:
                    raise RuntimeError("a job of the pass failed; see the log")

        return self.measure(step)

    def settle(self, passes: int = 3) -> None:
        """Passes ten minutes apart, until the echoes of the worker's own writes are read."""
        for _ in range(passes):
            self.run_pass(advance=timedelta(minutes=10))

    # -- scenario -------------------------------------------------------------------------------

    def ticket_by_title(self, title: str) -> int:
        for ticket_id, ticket in self.sandbox.tickets.items():
            if ticket["title"] == title:
                return ticket_id
        raise KeyError(title)

    def flag(self, ticket_id: int) -> None:
        """What the agent's Escalate macro does on the original ticket."""
        self.sandbox.agent_update(
            ticket_id,
            ALICE,
            escalation_requested=True,
            escalation_reason="outage_beyond_sla",
            customer_segment="residential",
            escalation_callback_at="2026-12-01T15:00:00.000Z",
        )

    def close(self) -> None:
        self.store.close()
        self.server.shutdown()
