"""The kill soak (``RELIABILITY.md`` §B4): the real worker, ``escalations run`` as a
long-running process, is killed with ``SIGKILL`` at random moments while a traffic generator
writes into the sandbox what agents and customers do — customer emails (some with
attachments), new tickets, flags, level changes, deletions, moves to a group the worker
cannot read and back, and the end of escalations: closing (resolve), recording the
confirmation's outcome, reopening a closed one. When the traffic stops, every moved ticket
is back where the worker can read it; one clean pass must leave 0 duplicates, 0 losses and
0 stuck effects, every confirmed escalation exactly one complete hard copy, and a second
clean pass must write nothing.

Seeded: ``SOAK_SEED`` picks the seed (a random one otherwise) and every failure message starts
with it, so ``SOAK_SEED=<seed> python -m pytest tests/reliability/test_kill_soak.py`` replays
the same traffic (the kill moments depend on timing as well, so a replay is close, not
identical). ``SOAK_KILLS`` sets the size; CI runs the default."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from escalations.archive import directory
from escalations.clock import SystemClock
from escalations.models import State
from escalations.store.sqlite import SqliteStore
from sandbox import ZammadSandbox, serve
from tests.reliability.invariants import check_invariants
from tests.reliability.test_crash_points import ALICE, ROOT, Installation

KILLS = int(os.environ.get("SOAK_KILLS", "12"))
"""Worker processes killed; each lives a random 0.3–3 s (start-up included)."""
pytestmark = [pytest.mark.soak, pytest.mark.timeout(120 + 5 * KILLS)]
LIFETIME = (0.3, 3.0)
PAUSE = (0.02, 0.25)
"""Seconds between two generator actions."""
HIDDEN_GROUP = "Billing"
"""A group the worker's account cannot read."""
LEAD = "billing.lead@fused.example"
"""An agent who works in Support and in the hidden group: flags and moves tickets."""
CUSTOMERS = (
    "sean.walsh@residential.example",
    "orla.byrne@netreseller.example",
    "noc@wholesale-carrier.example",
    "it.lead@megacorp.example",
)
REASONS = ("outage_beyond_sla", "cannot_trade", "protracted_repair", "repeat_faults")
SEGMENTS = ("residential", "reseller", "wholesale", "enterprise")
RECOVERY_TIMEOUT = 120


@dataclass
class Traffic:
    """Writes what agents and customers do into the sandbox, from a thread, until stopped."""

    sandbox: ZammadSandbox
    rng: random.Random
    done: Counter[str] = field(default_factory=Counter)
    deleted: set[int] = field(default_factory=set)
    hidden: set[int] = field(default_factory=set)
    flagged: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        actions = [
            (self.customer_email, 8),
            (self.new_ticket, 3),
            (self.flag, 3),
            (self.level_change, 3),
            (self.move, 2),
            (self.delete, 1),
            (self.resolve, 2),
            (self.outcome, 2),
            (self.reopen, 1),
        ]
        funcs, weights = zip(*actions, strict=True)
        while not self.stop.wait(self.rng.uniform(*PAUSE)):
            action = self.rng.choices(funcs, weights)[0]
            try:
                action()
            except Exception as exc:  # a generator bug must fail the test, not hang it
                self.errors.append(f"{action.__name__}: {type(exc).__name__}: {exc}")
                return

    # -- what is there to act on ----------------------------------------------------------------
    def _originals(self) -> list[int]:
        return sorted(t for t, v in self.sandbox.tickets.items() if not v.get("escalation_key"))

    def _escalation_tickets(self) -> list[int]:
        return sorted(t for t, v in self.sandbox.tickets.items() if v.get("escalation_key"))

    # -- actions ------------------------------------------------------------------------------
    def customer_email(self) -> None:
        tickets = self._originals()
        if not tickets:
            return
        ticket = self.rng.choice(tickets)
        n = self.done["customer_email"]
        attachments = (
            [(f"log-{n}.txt", "text/plain", f"line {n}\n".encode())]
            if self.rng.random() < 0.3
            else []
        )
        self.sandbox.seed_customer_email(
            ticket,
            f"Customer follow-up {n}.",
            subject=f"Re: follow-up {n}",
            attachments=attachments,
        )
        self.done["customer_email"] += 1

    def new_ticket(self) -> None:
        n = self.done["new_ticket"]
        self.sandbox.create_ticket_as_customer(
            self.rng.choice(CUSTOMERS), f"New problem {n}", f"Another fault, number {n}."
        )
        self.done["new_ticket"] += 1

    def flag(self) -> None:
        candidates = [t for t in self._originals() if t not in self.flagged]
        if not candidates:
            return
        ticket = self.rng.choice(candidates)
        self.sandbox.agent_update(
            ticket,
            LEAD,
            escalation_requested=True,
            escalation_reason=self.rng.choice(REASONS),
            customer_segment=self.rng.choice(SEGMENTS),
        )
        self.flagged.add(ticket)
        self.done["flag"] += 1

    def level_change(self) -> None:
        tickets = self._escalation_tickets()
        if not tickets:
            return
        ticket = self.rng.choice(tickets)
        self.sandbox.agent_update(ticket, ALICE, escalation_level=str(self.rng.randint(1, 4)))
        self.done["level_change"] += 1

    def move(self) -> None:
        if self.hidden and self.rng.random() < 0.5:
            ticket = self.rng.choice(sorted(self.hidden))
            self.sandbox.agent_update(ticket, LEAD, group="Support")
            self.hidden.discard(ticket)
        else:
            candidates = [t for t in self._originals() if t not in self.hidden]
            if not candidates:
                return
            ticket = self.rng.choice(candidates)
            self.sandbox.agent_update(ticket, LEAD, group=HIDDEN_GROUP)
            self.hidden.add(ticket)
        self.done["move"] += 1

    def delete(self) -> None:
        """An agent deletes a customer's newer ticket, or an escalation ticket (rarely: the
        escalation then ends, and the original is told)."""
        if self.rng.random() < 0.3:
            candidates = self._escalation_tickets()
        else:
            candidates = [
                t
                for t in self._originals()
                if self.sandbox.tickets[t]["title"].startswith("New problem")
            ]
        if not candidates:
            return
        ticket = self.rng.choice(candidates)
        self.sandbox.delete_ticket(ticket)
        self.deleted.add(ticket)
        self.hidden.discard(ticket)
        self.done["delete"] += 1

    def _escalations_in(self, state: str) -> list[int]:
        # one snapshot: each read of ``sandbox.tickets`` is a new one, and the worker may
        # create an escalation ticket between two reads
        return sorted(
            t
            for t, v in self.sandbox.tickets.items()
            if v.get("escalation_key") and v["state"] == state
        )

    def resolve(self) -> None:
        """The fault is fixed: an agent fills in the RFO and closes the escalation ticket."""
        tickets = self._escalations_in("open")
        if not tickets:
            return
        ticket = self.rng.choice(tickets)
        self.sandbox.agent_update(ticket, ALICE, escalation_rfo="Fibre spliced.", state="closed")
        self.done["resolve"] += 1

    def outcome(self) -> None:
        """The confirmation call of a parked escalation: confirmed, mostly."""
        tickets = self._escalations_in("parked")
        if not tickets:
            return
        ticket = self.rng.choice(tickets)
        tag = "escalation-confirmed" if self.rng.random() < 0.8 else "escalation-not-satisfied"
        self.sandbox.add_tag(ticket, tag, login=ALICE)
        self.done[tag.removeprefix("escalation-")] += 1

    def reopen(self) -> None:
        """An agent reopens a closed escalation ticket."""
        tickets = self._escalations_in("closed")
        if not tickets:
            return
        self.sandbox.agent_update(self.rng.choice(tickets), ALICE, state="open")
        self.done["reopen"] += 1

    def bring_back(self) -> None:
        """Every ticket moved out of the worker's sight comes back (the traffic has stopped)."""
        for ticket in sorted(self.hidden):
            self.sandbox.agent_update(ticket, LEAD, group="Support")
        self.hidden.clear()


@pytest.fixture
def soak(tmp_path: Path) -> Iterator[Installation]:
    sandbox = ZammadSandbox.demo()
    sandbox.add_group(HIDDEN_GROUP)
    sandbox.add_user(
        LEAD, firstname="Bea", lastname="Lead", groups={"Support": ["full"], HIDDEN_GROUP: ["full"]}
    )
    with serve(sandbox) as server:
        yield Installation(sandbox, server, tmp_path / "state")


def _seed() -> int:
    return int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(1, 2**31))


def test_kill_soak(soak: Installation) -> None:
    seed = _seed()
    rng = random.Random(seed)
    traffic = Traffic(soak.sandbox, random.Random(rng.random()))
    say = f"SOAK_SEED={seed} SOAK_KILLS={KILLS}"
    generator = threading.Thread(target=traffic.run, name="traffic", daemon=True)
    generator.start()
    argv = [sys.executable, "-m", "escalations", "run"]
    env = soak.env(ESCALATIONS_POLL_INTERVAL_SECONDS="1", ESCALATIONS_POLL_OVERLAP_SECONDS="5")
    kills = 0
    try:
        for _ in range(KILLS):
            worker = subprocess.Popen(
                argv,
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(rng.uniform(*LIFETIME))
            worker.send_signal(signal.SIGKILL)
            _, stderr = worker.communicate(timeout=30)
            soak.log.append(
                f"$ escalations run (killed after {kills} kills) -> {worker.returncode}"
            )
            soak.log.append(stderr[-4000:])
            if worker.returncode != -signal.SIGKILL:
                pytest.fail(
                    f"{say}: the worker exited {worker.returncode} before its kill\n{stderr}"
                )
            kills += 1
    finally:
        traffic.stop.set()
        generator.join(timeout=30)
    assert not traffic.errors, f"{say}: the traffic generator broke: {traffic.errors}"
    traffic.bring_back()

    try:
        soak.run()  # the clean pass
        report = check_invariants(soak.sandbox, soak.store_path, deleted=traffic.deleted)
        _check_flags_and_levels(soak, traffic)
        _check_hard_copies(soak, traffic.deleted)
        before = len(soak.writes())
        soak.run()
        assert soak.writes()[before:] == [], "a second clean pass wrote to the helpdesk"
    except AssertionError as exc:
        raise AssertionError(f"{say}: {exc}\ntraffic: {dict(traffic.done)}") from None
    # the soak must have exercised what it claims to, or it proves nothing
    assert kills == KILLS
    assert traffic.done["flag"] >= 1, (say, traffic.done)
    assert traffic.done["customer_email"] >= 5, (say, traffic.done)
    assert report.escalation_tickets, f"{say}: no escalation was raised"
    sys.stderr.write(
        f"kill soak {say}: {kills} kills, traffic {dict(traffic.done)}, "
        f"{len(report.escalation_tickets)} escalation tickets, {len(report.copies)} copies, "
        f"effects {dict(report.effects)}\n"
    )


def _check_hard_copies(soak: Installation, deleted: set[int]) -> None:
    """Every closed escalation's close has exactly one complete hard copy (unless an agent
    deleted its ticket before it was filed: then there is nothing to read it from), and
    nothing half written is left in the archive."""
    store = SqliteStore(soak.store_path, SystemClock())
    try:
        escalations = {esc.id: esc for esc in store.escalations_in()}
        copies = store.archives()
    finally:
        store.close()
    problems = []
    root = soak.state_dir / "archive"
    for esc in escalations.values():
        if (
            esc.state is State.CLOSED
            and esc.confirmed_at is not None
            and esc.escalation_ticket_id not in deleted
        ):
            problems.append(f"escalation {esc.key}: closed, and no hard copy")
    recorded = {Path(c.path) for c in copies}
    for copy in copies:
        problems += directory.verify(Path(copy.path))
    on_disk = set(root.iterdir()) if root.exists() else set()
    for path in sorted(on_disk - recorded):
        problems.append(f"{path}: in the archive, not recorded")
    assert not problems, "\n".join(problems)


def _check_flags_and_levels(soak: Installation, traffic: Traffic) -> None:
    """Every flag was acted on; every open escalation ticket carries its level's tag only."""
    store = SqliteStore(soak.store_path, SystemClock())
    try:
        escalations = store.escalations_in()
    finally:
        store.close()
    tickets = soak.sandbox.tickets
    raised_for = {esc.original_ticket_id for esc in escalations}
    problems = []
    for ticket_id in sorted(traffic.flagged - traffic.deleted):
        if tickets[ticket_id]["escalation_requested"]:
            problems.append(f"ticket {ticket_id}: its flag was never consumed")
        if ticket_id not in raised_for:
            problems.append(f"ticket {ticket_id}: flagged, and no escalation was raised")
    for esc in escalations:
        ticket = tickets.get(esc.escalation_ticket_id or 0)
        if esc.state is not State.OPEN or ticket is None:
            continue  # a parked or closed one's level field is not the worker's to follow
        level_tags = sorted(
            t for t in soak.sandbox.tags_of(ticket["id"]) if t.startswith("escalation-l")
        )
        want = f"escalation-l{ticket['escalation_level']}"
        if level_tags != [want]:
            problems.append(
                f"escalation ticket {ticket['id']} at level {ticket['escalation_level']} "
                f"carries level tags {level_tags}, expected [{want}]"
            )
    assert not problems, "\n".join(problems)
