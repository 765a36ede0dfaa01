"""A helpdesk with no tags, no subscriptions and no atomic create (issue 9): the same jobs,
through a binding that consults the adapter's capabilities, carry the flag → escalation →
copy → level scenarios end to end, exactly once, a crash between the chained writes
included. The adapter is the real Zammad adapter with those capabilities declared absent; any
use of them fails the test."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import responses

from connector.base import Capability, CreatedTicket, Marker, TicketDraft
from connector.http import HttpClient, HttpPolicy
from connector.zammad import ZammadAdapter
from escalations.app.wiring import Installation, build
from escalations.clock import FakeClock
from escalations.faults import FaultPoints, RaiseAt, SimulatedCrash
from escalations.mappings import load_mappings
from escalations.models import EffectState, State
from escalations.settings import Settings, shipped_mappings_dir
from escalations.store.sqlite import SqliteStore
from sandbox import ZammadSandbox, mount
from tests.jobs.conftest import ALICE, BASE_URL, BOT, DUTY_MANAGER

TITLE = "Broadband down since Monday"
ABSENT = {Capability.TAGS, Capability.SUBSCRIBE, Capability.ATOMIC_CREATE}


class LimitedAdapter(ZammadAdapter):
    capabilities = frozenset(Capability) - ABSENT

    def set_tags(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("this helpdesk has no tags")

    def subscribe(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("this helpdesk has no subscriptions")

    def create_ticket(self, draft: TicketDraft, *, marker: Marker) -> CreatedTicket:
        assert not draft.tags, "no tags on create"
        assert draft.parent_id is None, "no link on create"
        assert not draft.mention_user_ids, "no mentions on create"
        return super().create_ticket(draft, marker=marker)


class Limited:
    """The sandbox (with two boolean attributes the binding uses instead of tags), a store
    file, and an installation that can crash and be started again on the same file."""

    def __init__(self, tmp_path: Path, clock: FakeClock, rsps: responses.RequestsMock) -> None:
        self.clock = clock
        self.sandbox = ZammadSandbox.demo(clock=clock)
        self.sandbox.add_attribute("escalated_original", "boolean")
        self.sandbox.add_attribute("escalation_route_failed", "boolean")
        mount(self.sandbox, rsps, BASE_URL)
        directory = tmp_path / "mappings"
        shutil.copytree(shipped_mappings_dir(), directory)
        toml = directory / "zammad.toml"
        toml.write_text(
            toml.read_text().replace(
                'original_ticket = "escalation_original"\n',
                'original_ticket = "escalation_original"\nescalated = "escalated_original"\n'
                'route_failed = "escalation_route_failed"\n',
            )
        )
        self.mappings = load_mappings(directory)
        self.token = self.sandbox.token_of(BOT)
        self.settings = Settings(  # type: ignore[call-arg]
            _env_file=None, helpdesk_url=BASE_URL, helpdesk_token=self.token, state_dir=tmp_path
        )
        self.path = tmp_path / "escalations.sqlite3"
        self.installation = self.start()

    def start(self, faults: FaultPoints | None = None) -> Installation:
        """A new worker process: its own adapter and store connection on the same file."""
        policy = HttpPolicy(requests_per_minute=6000, burst=1000)
        client = HttpClient(
            BASE_URL, {"Authorization": f"Token token={self.token}"}, policy, self.clock
        )
        store = SqliteStore(self.path, self.clock)
        installation = build(
            self.settings, self.clock, adapter=LimitedAdapter(client, clock=self.clock),
            store=store, mappings=self.mappings, faults=faults,
        )  # fmt: skip
        store.acquire_lock(worker=installation.executor.worker_id)
        return installation

    def sync(self, advance: timedelta = timedelta(minutes=3)) -> None:
        self.clock.advance(advance)
        for result in self.installation.worker().run_once():
            assert result is not None, "a job of the pass failed; see the log"

    def crash_and_restart(self, faults: FaultPoints) -> None:
        self.installation.ctx.store.close()
        self.installation = self.start(faults)
        with pytest.raises(SimulatedCrash):
            self.sync()
        self.installation.ctx.store.close()
        self.installation = self.start()

    @property
    def store(self) -> SqliteStore:
        return self.installation.ctx.store  # type: ignore[return-value]

    def escalation_tickets(self) -> list[dict[str, Any]]:
        return [t for t in self.sandbox.tickets.values() if t.get("escalation_key")]

    def copies_in(self, ticket_id: int) -> list[dict[str, Any]]:
        return [a for a in self.sandbox.articles_of(ticket_id) if "copied from ticket" in a["body"]]

    def flag(self, ticket_id: int) -> None:
        self.sandbox.agent_update(
            ticket_id, ALICE, escalation_requested=True, escalation_reason="outage_beyond_sla",
            customer_segment="residential",
        )  # fmt: skip


@pytest.fixture
def limited(tmp_path: Path, clock: FakeClock) -> Iterator[Limited]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        world = Limited(tmp_path, clock, rsps)
        yield world
        world.store.close()


def _original(limited: Limited) -> int:
    return next(i for i, t in limited.sandbox.tickets.items() if t["title"] == TITLE)


def _check_exactly_once(limited: Limited, original: int) -> dict[str, Any]:
    sb = limited.sandbox
    (esc,) = limited.escalation_tickets()
    assert sb.tags_of(esc["id"]) == []
    assert sb.tags_of(original) == []
    parents = [lk for lk in sb.links_of(esc["id"]) if lk["link_object_value"] == original]
    assert len(parents) == 1
    assert sb.ticket(original)["escalated_original"] is True
    assert not sb.ticket(original)["escalation_requested"]
    bodies = [c["body"] for c in limited.copies_in(esc["id"])]
    assert len(bodies) == len(set(bodies))  # no copy twice
    notes = [a for a in sb.articles_of(original) if f"#{esc['number']}" in a["body"]]
    assert len(notes) == 1
    assert not limited.store.effects(EffectState.FAILED)
    assert not limited.store.effects(EffectState.PENDING, EffectState.IN_FLIGHT)
    return esc


def test_flag_copy_and_levels_without_tags_subscriptions_or_an_atomic_create(
    limited: Limited,
) -> None:
    sb = limited.sandbox
    original = _original(limited)
    limited.flag(original)
    limited.sync()
    limited.sync()
    esc = _check_exactly_once(limited, original)
    assert esc["title"] == f"[ESC L1] {TITLE}"
    history = len(limited.copies_in(esc["id"]))
    assert history >= 1
    sb.seed_customer_email(original, "Still down, day four.", subject="Re: broadband")
    limited.sync()
    assert "Still down, day four." in limited.copies_in(esc["id"])[-1]["body"]
    sb.agent_update(esc["id"], ALICE, escalation_level="2")
    limited.sync()
    sb.agent_update(esc["id"], DUTY_MANAGER, escalation_level="3")
    limited.sync()
    limited.sync()
    after = sb.ticket(esc["id"])
    assert after["title"] == f"[ESC L3] {TITLE}"
    assert after["owner"] == DUTY_MANAGER
    level_notes = [a for a in sb.articles_of(esc["id"]) if "<b>Level 3" in a["body"]]
    assert len(level_notes) == 1
    assert "data-mention-user-id" not in level_notes[0]["body"]  # names, not mentions
    assert sb.subscribers_of(esc["id"]) == []
    (stored,) = limited.store.escalations_in(State.OPEN)
    assert stored.level == 3
    _check_exactly_once(limited, original)


@pytest.mark.parametrize(
    ("point", "kind"),
    [
        ("effect.sent", "create_escalation"),  # created, the answer never recorded
        ("effect.committed", "create_escalation"),  # recorded; the link not yet made
        ("effect.sent", "link"),  # linked, the answer never recorded
        ("intent.committed", None),  # the escalation recorded, nothing written yet
    ],
)
def test_a_crash_between_the_chained_writes_leaves_one_linked_escalation_ticket(
    limited: Limited, point: str, kind: str | None
) -> None:
    original = _original(limited)
    limited.flag(original)
    limited.crash_and_restart(RaiseAt(point, kind))
    for _ in range(4):
        limited.sync()
    _check_exactly_once(limited, original)


def test_the_created_ticket_is_found_by_its_field_when_it_has_no_link_yet(
    limited: Limited,
) -> None:
    """The look-before-write of a create that cannot link at once: without the field search
    the retry after ``effect.sent`` would create a second ticket."""
    original = _original(limited)
    limited.flag(original)
    limited.crash_and_restart(RaiseAt("effect.sent", "create_escalation"))
    assert len(limited.escalation_tickets()) == 1
    assert limited.sandbox.links_of(limited.escalation_tickets()[0]["id"]) == []
    for _ in range(3):
        limited.sync()
    assert len(limited.escalation_tickets()) == 1
    calls = [c for c in limited.sandbox.requests if c[0] == "POST" and re.search("search", c[1])]
    assert calls  # found by the condition search
