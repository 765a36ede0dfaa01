"""The sync job as a Hypothesis state machine (``RELIABILITY.md`` §B4, §B8 "model-based run of
the workflow and effects under crashes, faults and clock jumps").

Customers write, agents flag, change levels and log carrier contacts, the worker runs passes,
crashes at a named fault point (``RaiseAt`` → ``SimulatedCrash``; the context is dropped and a
new one opens the *same* SQLite file, as a restarted process would), the helpdesk misbehaves
(429, 5xx, refused connections, lost answers, and 422 refusals for good) and the clock jumps.
After every step the §B4 invariants hold in their mid-run form (at most one escalation ticket
per escalation, at most one copy per customer email, cursor ≤ signpost, integrity ok). At the
end the faults are cleared and clean passes run (each past every back-off) until one finds
nothing to do: no write, no new effect, nothing pending, in flight or to scan. Then the
invariants hold in full, no flag, level change or carrier contact was lost, and the only
failed effects are the ones an injected 422 refused.

The helpdesk (the sandbox) and the worker share one ``FakeClock``. A step *back* moves only the
worker host's view of it (``WorkerClock.skew``): an NTP step on the worker's machine. The
helpdesk's own clock never steps back here: ``updated_at`` cursors cannot survive that (the
sandbox keeps ``updated_at`` monotonic, and Zammad would stamp changes before versions already
seen), which is outside what the worker can promise.

CI runs 25 examples of up to 25 steps (a few seconds). For a longer hunt set
``ESCALATIONS_MODEL_EXAMPLES`` (and ``ESCALATIONS_MODEL_STEPS``, the most steps per example),
and lift pytest's per-test timeout::

    ESCALATIONS_MODEL_EXAMPLES=1000 ESCALATIONS_MODEL_STEPS=50 \
        .venv/bin/python -m pytest -o timeout=0 tests/reliability/test_model.py

A failure is shrunk and saved in Hypothesis' example database (``.hypothesis/``), so the next
run replays it first.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import responses
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pydantic import SecretStr

from connector.errors import HelpdeskError
from connector.http import HttpClient, HttpPolicy
from connector.zammad import ZammadAdapter
from escalations.app.wiring import Installation, build
from escalations.clock import FakeClock
from escalations.effects.helpdesk import COPY_ARTICLE, CREATE_ESCALATION, NOTE, TAGS, UPDATE_TICKET
from escalations.faults import POINTS, FaultPoints, RaiseAt, SimulatedCrash
from escalations.mappings import load_mappings
from escalations.models import EffectState, State
from escalations.settings import Settings, shipped_mappings_dir
from escalations.store.sqlite import SqliteStore
from sandbox import Fault, LoseResponse, RateLimited, Refuse, ServerError, ZammadSandbox, mount
from sandbox.records import ApiError
from tests.reliability.invariants import check_invariants

pytestmark = pytest.mark.crash

BASE_URL = "https://zammad.test"
BOT = "escalation-bot"
ALICE = "alice.agent@fused.example"
BOB = "bob.agent@fused.example"
DUTY_MANAGER = "duty.manager@fused.example"
PLACEHOLDER = "escalations-internal@example.invalid"
CUSTOMERS = (
    "sean.walsh@residential.example",
    "orla.byrne@netreseller.example",
    "noc@wholesale-carrier.example",
    "it.lead@megacorp.example",
)
MAPPINGS = load_mappings(shipped_mappings_dir())
FLAG_TAG = MAPPINGS.helpdesk.flag.tag or "escalate"

POLL = timedelta(seconds=30)
"""What a worker tick (and a restarted worker's pass) moves the clock on by."""
HUMAN = timedelta(seconds=1)
"""What every agent or customer action moves the clock on by: the sandbox keeps ``updated_at``
monotonic, so two versions of a ticket in the same millisecond would be one version."""
QUIESCE_STEP = timedelta(minutes=20)
"""Past the executor's back-off (capped at 15 minutes) for every quiescing pass."""
QUIESCE_PASSES = 10
MAX_SKEW_BEHIND = timedelta(minutes=10)

KINDS = (None, CREATE_ESCALATION, COPY_ARTICLE, NOTE, TAGS, UPDATE_TICKET)
"""Effect kinds a crash may be aimed at; ``None`` is any kind."""
WRITES = (
    ("POST", r"^/api/v1/tickets$"),
    ("POST", r"^/api/v1/ticket_articles$"),
    ("PUT", r"^/api/v1/tickets/\d+$"),
    ("POST", r"^/api/v1/tags/add$"),
    ("DELETE", r"^/api/v1/tags/remove$"),
)
READS = (
    ("POST", r"^/api/v1/tickets/search$"),
    ("GET", r"^/api/v1/tickets/\d+$"),
    ("GET", r"^/api/v1/links$"),
    ("GET", r"^/api/v1/ticket_articles/by_ticket/\d+$"),
    ("GET", r"^/api/v1/tags$"),
    ("GET", r"^/api/v1/users/"),
)
READ_ONLY_POSTS = ("/api/v1/tickets/search",)
CARRIER_COMPLETE = (
    "Carrier contact\nCarrier: BT\nStage: agent\nForename: Dave\nLocation: Glasgow\n"
    "User ID: BT-4411\nTime of call: 09:40"
)
CARRIER_INCOMPLETE = "Carrier contact\nCarrier: BT\nStage: team leader"


def _from_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


class WorkerClock:
    """The worker host's clock: the shared ``FakeClock`` plus ``skew`` (an NTP step on the
    worker's machine). Sleeping and the monotonic clock are the shared clock's."""

    def __init__(self, base: FakeClock) -> None:
        self.base = base
        self.skew = timedelta(0)

    def now(self) -> datetime:
        return self.base.now() + self.skew

    def monotonic(self) -> float:
        return self.base.monotonic()

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)


def _faults() -> st.SearchStrategy[Fault]:
    """A sandbox fault on one of the paths the worker uses, firing one to three times."""
    times = st.integers(1, 3)
    write = st.sampled_from(WRITES)
    anywhere = st.sampled_from(WRITES + READS)

    def on(
        target: st.SearchStrategy[tuple[str, str]], build: Callable[..., Fault], **kw: Any
    ) -> st.SearchStrategy[Fault]:
        return st.builds(
            lambda where, n, **rest: build(method=where[0], path=where[1], times=n, **rest),
            target,
            times,
            **kw,
        )

    return st.one_of(
        on(anywhere, RateLimited, retry_after=st.sampled_from([0, 7, 120, None])),
        on(anywhere, ServerError, status=st.sampled_from([500, 502, 503, 504])),
        on(write, ServerError, status=st.sampled_from([500, 502, 504]), apply=st.just(True)),
        on(write, ServerError, status=st.just(422)),  # refused for good
        on(anywhere, LoseResponse, mode=st.sampled_from(["timeout", "reset"])),
        on(anywhere, Refuse),
    )


F = TypeVar("F", bound=Callable[..., None])


def _step(fn: F) -> F:
    """A step that leaves ``healthy`` false if it raises: teardown then skips ``quiesce`` and
    lets Hypothesis report (and shrink) the first failure, not a consequence of it."""

    @functools.wraps(fn)
    def wrapper(self: SyncModel, *args: Any, **kwargs: Any) -> None:
        self.healthy = False
        fn(self, *args, **kwargs)
        self.healthy = True

    return wrapper  # type: ignore[return-value]


class SyncModel(RuleBasedStateMachine):
    """The sandbox, the SQLite file and the clock outlive crashes; nothing else does."""

    def __init__(self) -> None:
        super().__init__()
        self.healthy = True
        self.tmp = Path(tempfile.mkdtemp(prefix="escalations-model-"))
        self.store_path = self.tmp / "escalations.sqlite3"
        self.clock = FakeClock()
        self.worker_clock = WorkerClock(self.clock)
        self.rsps = responses.RequestsMock(assert_all_requests_are_fired=False)
        self.rsps.start()
        self.sandbox = ZammadSandbox.demo(clock=self.clock)
        mount(self.sandbox, self.rsps, BASE_URL)
        self.token = self.sandbox.token_of(BOT)
        self.refusals: list[tuple[Fault, int]] = []
        """422 faults injected, with their ``times`` when queued: fired if it went down."""
        self.flagged: set[int] = set()
        self.carrier_notes: dict[int, list[int]] = {}
        """Escalation ticket id → ids of the carrier-contact notes agents wrote on it."""
        self.tickets_opened = 0
        self.crashes = 0
        self.ctx = self._context()

    # -- wiring --------------------------------------------------------------------------------
    def _context(self, faults: FaultPoints | None = None) -> Installation:
        """A worker process: its own HTTP client, adapter and store connection; it takes the
        store's lock as ``escalations run`` does (releasing a dead process's claims)."""
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            helpdesk_url=BASE_URL,
            helpdesk_token=SecretStr(self.token),
            state_dir=self.tmp,
        )
        policy = HttpPolicy(requests_per_minute=6000, burst=1000)
        client = HttpClient(
            BASE_URL, {"Authorization": f"Token token={self.token}"}, policy, self.worker_clock
        )
        adapter = ZammadAdapter(client, clock=self.worker_clock)
        store = SqliteStore(self.store_path, self.worker_clock)
        store.acquire_lock(worker="model-worker")
        return build(
            settings,
            self.worker_clock,
            adapter=adapter,
            store=store,
            mappings=MAPPINGS,
            faults=faults,
            worker_id="model-worker",
        )

    def _pass(self, installation: Installation) -> None:
        """One sync tick, as ``Worker.run_job`` runs it (each job, then the effects step): a
        helpdesk error ends the job (the worker logs it and carries on); anything else is a
        bug and fails the test."""
        worker = installation.worker()
        for job in worker.jobs:
            try:
                result = job.run(installation.ctx)
                worker.run_effects(result)
            except HelpdeskError as exc:
                note(f"{job.name} ended by {type(exc).__name__}: {exc}")
                return
            note(f"{job.name}: {result.summary()}")

    # -- what is in the helpdesk ---------------------------------------------------------------
    def _customer_tickets(self) -> list[int]:
        placeholder = self.sandbox.user_id(PLACEHOLDER)
        return sorted(
            tid
            for tid, t in self.sandbox.tickets.items()
            if not t.get("escalation_key") and t["customer_id"] != placeholder
        )

    def _escalation_tickets(self) -> list[int]:
        return sorted(tid for tid, t in self.sandbox.tickets.items() if t.get("escalation_key"))

    def _has_escalation_ticket(self) -> bool:
        return bool(self._escalation_tickets())

    # -- the helpdesk's people -----------------------------------------------------------------
    @rule(which=st.integers(0, 63), attachment=st.booleans())
    @_step
    def customer_emails(self, which: int, attachment: bool) -> None:
        tickets = self._customer_tickets()
        ticket_id = tickets[which % len(tickets)]
        self.clock.advance(HUMAN)
        files = [("photo.txt", "text/plain", b"router lights all red")] if attachment else []
        self.sandbox.seed_customer_email(
            ticket_id, f"Still broken ({which}).", subject="Re: fault", attachments=files
        )

    @rule(which=st.integers(0, len(CUSTOMERS) - 1), attachment=st.booleans())
    @_step
    def customer_opens_ticket(self, which: int, attachment: bool) -> None:
        self.clock.advance(HUMAN)
        self.tickets_opened += 1
        files = [("log.txt", "text/plain", b"sync lost at 03:12")] if attachment else []
        self.sandbox.create_ticket_as_customer(
            CUSTOMERS[which],
            f"Another fault {self.tickets_opened}",
            "It is down again.",
            attachments=files,
        )

    @rule(which=st.integers(0, 63), by=st.sampled_from([ALICE, BOB]), tag=st.booleans())
    @_step
    def agent_flags(self, which: int, by: str, tag: bool) -> None:
        """The Escalate macro (``World.flag``), or only the flag tag; flagging again while
        open is allowed."""
        tickets = self._customer_tickets()
        ticket_id = tickets[which % len(tickets)]
        self.clock.advance(HUMAN)
        if tag:
            self.sandbox.add_tag(ticket_id, FLAG_TAG, login=by)
        else:
            self.sandbox.agent_update(
                ticket_id,
                by,
                escalation_requested=True,
                escalation_reason="outage_beyond_sla",
                customer_segment="residential",
                escalation_callback_at="2026-12-01T15:00:00.000Z",
            )
        self.flagged.add(ticket_id)

    @precondition(_has_escalation_ticket)
    @rule(
        which=st.integers(0, 63),
        level=st.integers(1, 4),
        by=st.sampled_from([ALICE, BOB, DUTY_MANAGER]),
    )
    @_step
    def agent_changes_level(self, which: int, level: int, by: str) -> None:
        tickets = self._escalation_tickets()
        ticket_id = tickets[which % len(tickets)]
        self.clock.advance(HUMAN)
        try:
            self.sandbox.agent_update(ticket_id, by, escalation_level=str(level))
        except ApiError as exc:  # the helpdesk refused the agent: nothing for the worker
            note(f"agent refused: {exc}")

    @precondition(_has_escalation_ticket)
    @rule(which=st.integers(0, 63), complete=st.booleans(), route_failed=st.booleans())
    @_step
    def agent_logs_carrier_contact(self, which: int, complete: bool, route_failed: bool) -> None:
        tickets = self._escalation_tickets()
        ticket_id = tickets[which % len(tickets)]
        self.clock.advance(HUMAN)
        body = CARRIER_COMPLETE if complete else CARRIER_INCOMPLETE
        article = self.sandbox.agent_article(ticket_id, ALICE, body)
        self.carrier_notes.setdefault(ticket_id, []).append(article)
        if route_failed:
            self.sandbox.add_tag(ticket_id, "carrier-route-failed", login=ALICE)

    # -- the worker ----------------------------------------------------------------------------
    @rule()
    @_step
    def worker_tick(self) -> None:
        self.clock.advance(POLL)
        self._pass(self.ctx)

    @rule(
        point=st.sampled_from(POINTS),
        kind=st.sampled_from(KINDS),
        nth=st.integers(1, 3),
    )
    @_step
    def crash_worker(self, point: str, kind: str | None, nth: int) -> None:
        """The running process dies; a new one starts on the same SQLite file, crashes at
        ``point`` (if the pass gets there) and dies too; a third process carries on."""
        self.ctx.ctx.store.close()
        self.clock.advance(POLL)
        crashing = self._context(RaiseAt(point, kind, nth))
        try:
            self._pass(crashing)
        except SimulatedCrash as exc:
            self.crashes += 1
            note(f"crashed: {exc}")
        finally:
            crashing.ctx.store.close()
        self.ctx = self._context()

    # -- the world around them ---------------------------------------------------------------
    @rule(fault=_faults())
    @_step
    def inject_fault(self, fault: Fault) -> None:
        self.sandbox.faults.add(fault)
        if isinstance(fault, ServerError) and 400 <= fault.status < 500:
            self.refusals.append((fault, fault.times))

    @rule(
        delta=st.one_of(
            st.integers(1, 6 * 60).map(lambda m: timedelta(minutes=m)),
            st.integers(1, 90).map(lambda s: timedelta(seconds=-s)),
        )
    )
    @_step
    def advance_clock(self, delta: timedelta) -> None:
        """Forward: time passes for everyone. Back: the worker host's clock steps back."""
        if delta > timedelta(0):
            self.clock.advance(delta)
        else:
            self.worker_clock.skew = max(self.worker_clock.skew + delta, -MAX_SKEW_BEHIND)

    # -- after every step ----------------------------------------------------------------------
    @invariant()
    def nothing_duplicated(self) -> None:
        self.healthy = False
        check_invariants(self.sandbox, self.store_path, quiesced=False, failed_ok=True)
        self.healthy = True

    # -- the end -------------------------------------------------------------------------------
    def refused(self) -> bool:
        """Did an injected 422 fire, so some effect may have failed for good?"""
        return any(fault.times < queued for fault, queued in self.refusals)

    def _writes(self) -> list[tuple[str, str, int]]:
        return [
            r
            for r in self.sandbox.requests
            if r[0] in ("POST", "PUT", "DELETE") and r[1] not in READ_ONLY_POSTS
        ]

    def _at_rest_after_a_pass(self) -> bool:
        """One clean pass; ``True`` if it wrote nothing, requested nothing and left nothing
        pending, in flight or to scan. (A pass that finishes a recovered create leaves the
        escalation ticket's versions held back until then for the next one.)"""
        store = self.ctx.ctx.store
        effects, writes = len(store.effects()), len(self._writes())
        self.clock.advance(QUIESCE_STEP)
        self._pass(self.ctx)
        return (
            len(store.effects()) == effects
            and len(self._writes()) == writes
            and not store.effects(EffectState.PENDING, EffectState.IN_FLIGHT)
            and not store.pending_scans()
        )

    def quiesce(self) -> None:
        """No more faults: clean passes, each past every back-off, until one finds nothing to
        do; then everything that must hold at rest."""
        self.sandbox.faults.clear()
        rested: int | None = None
        for passes in range(1, QUIESCE_PASSES + 1):
            if self._at_rest_after_a_pass():
                rested = passes
                break
        refused = self.refused()
        check_invariants(self.sandbox, self.store_path, quiesced=True, failed_ok=refused)
        assert rested is not None, f"still busy after {QUIESCE_PASSES} clean passes"
        event(f"clean passes to come to rest: {rested}")
        self._check_failures_were_refusals()
        self._check_nothing_lost(refused)
        event(f"escalation tickets: {len(self._escalation_tickets())}")
        event(f"crashes: {min(self.crashes, 3)}{'+' if self.crashes > 3 else ''}")
        event(f"helpdesk faults fired: {min(len(self.sandbox.faults.fired), 5)}")
        event(f"a refusal fired: {refused}")

    def _check_failures_were_refusals(self) -> None:
        """An effect may fail for good only because the helpdesk refused it (an injected 422):
        crashes, lost answers, 5xx and 429 are all recovered from."""
        for effect in self.ctx.ctx.store.effects(EffectState.FAILED):
            error = effect.last_error or ""
            assert error.startswith("Rejected: HTTP 422"), (
                f"effect {effect.id} {effect.kind} {effect.key} failed: {error}"
            )

    def _check_nothing_lost(self, refused: bool) -> None:
        """Every flag raised an escalation; every level change and carrier contact an agent
        made on an open escalation is in the store and on the ticket."""
        store, sb = self.ctx.ctx.store, self.sandbox
        for ticket_id in sorted(self.flagged):
            assert store.escalations_for_ticket(ticket_id), f"flag on {ticket_id} lost"
            if not refused:
                assert not sb.ticket(ticket_id)["escalation_requested"], (
                    f"flag on {ticket_id} not consumed"
                )
                assert FLAG_TAG not in sb.tags_of(ticket_id), f"flag tag on {ticket_id} kept"
        for ticket_id in self._escalation_tickets():
            esc = store.escalation_by_ticket(ticket_id)
            assert esc is not None, f"escalation ticket {ticket_id} unknown to the store"
            if esc.state is not State.OPEN:
                continue
            ticket = sb.ticket(ticket_id)
            level = int(ticket["escalation_level"])
            assert esc.level == level, f"ticket {ticket_id} at level {level}, store {esc.level}"
            if not refused:
                assert ticket["title"].startswith(f"[ESC L{level}] "), ticket["title"]
                assert f"escalation-l{level}" in sb.tags_of(ticket_id)
            recorded = {c.source_article_id for c in store.carrier_contacts(esc.id)}
            missing = set(self.carrier_notes.get(ticket_id, [])) - recorded
            assert not missing, f"carrier notes {sorted(missing)} on {ticket_id} not recorded"

    def teardown(self) -> None:
        try:
            if self.healthy:
                self.quiesce()
        finally:
            self.ctx.ctx.store.close()
            self.rsps.stop(allow_assert=False)
            self.rsps.reset()
            shutil.rmtree(self.tmp, ignore_errors=True)


TestSyncModel = SyncModel.TestCase
TestSyncModel.settings = settings(
    max_examples=_from_env("ESCALATIONS_MODEL_EXAMPLES", 25),
    stateful_step_count=_from_env("ESCALATIONS_MODEL_STEPS", 25),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
