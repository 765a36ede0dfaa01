"""``GET /api/v1/cti/log``: the caller log as ``Cti::Log.log`` answers it
(``app/models/cti/log.rb``, ``cti_controller.rb``): ``cti.agent`` only, the newest
``view_limit`` calls newest first, answered calls with ``start_at``, numbers matched to users'
phone fields as ``known`` caller ids."""

from __future__ import annotations

from datetime import timedelta

from escalations.clock import FakeClock
from sandbox import ZammadSandbox
from tests.sandbox.conftest import BOT, Client

ALICE = "alice.agent@fused.example"
SEAN = "sean.walsh@residential.example"  # phone +353 1 555 0101


def test_the_caller_log_needs_cti_agent(api: Client, sandbox: ZammadSandbox) -> None:
    response = api("GET", "/cti/log")
    assert response.status_code == 403  # the bot's token holds ticket.agent only
    assert response.json()["error"] == "Not authorized"
    sandbox.grant_token(BOT, "cti.agent")
    assert api("GET", "/cti/log").status_code == 200


def test_calls_are_listed_newest_first_with_their_matches(
    api: Client, sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    sandbox.grant_token(BOT, "cti.agent")
    answered = sandbox.phone_call("+353 1 555 0101", agent=ALICE)
    clock.advance(timedelta(minutes=10))
    unanswered = sandbox.phone_call("0044 20 5550 9999", agent=ALICE, answered_after=None)
    data = api("GET", "/cti/log").json()
    assert set(data) == {"list", "assets", "backends"}
    first, second = data["list"]
    assert (first["id"], second["id"]) == (unanswered, answered)
    assert second["direction"] == "out"
    assert second["to"] == "35315550101"
    assert second["state"] == "hangup"
    assert second["start_at"] == "2026-12-01T09:00:12.000Z"
    assert second["duration_talking_time"] == 240
    (match,) = second["preferences"]["to"]
    assert (match["level"], match["user_id"]) == ("known", sandbox.user_id(SEAN))
    assert first["start_at"] is None  # nobody answered
    assert "to" not in first["preferences"]  # a number no user has
    assert str(sandbox.user_id(SEAN)) in data["assets"]["User"]


def test_only_the_view_limit_is_listed(
    api: Client, sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    sandbox.grant_token(BOT, "cti.agent")
    for _ in range(65):
        sandbox.phone_call("+353 1 555 0101", agent=ALICE)
        clock.advance(timedelta(minutes=1))
    rows = api("GET", "/cti/log").json()["list"]
    assert len(rows) == 60
    assert rows[0]["created_at"] == "2026-12-01T10:04:00.000Z"
    assert rows[-1]["created_at"] == "2026-12-01T09:05:00.000Z"
