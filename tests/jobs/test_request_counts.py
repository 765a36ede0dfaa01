"""How many requests each step costs, counted from the request log of the sandbox that the real
adapter talks to (counts, never timings; the timings are in ``bench/``). Each test pins the
requests of one step as made today, so a change that adds a request per pass, per ticket or
per write fails here; DESIGN.md "Targets" says what each should come down to."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

from tests.jobs.conftest import ALICE, World

TITLE = "Broadband down since Monday"
SEARCH = "POST /api/v1/tickets/search"
LIST_ARTICLES = "GET /api/v1/ticket_articles/by_ticket/N"
ADD_ARTICLE = "POST /api/v1/ticket_articles"


def _calls(world: World, since: int) -> Counter[str]:
    return Counter(re.sub(r"/\d+", "/N", call) for call in world.http_calls()[since:])


def _pass(world: World, advance: timedelta = timedelta(seconds=30)) -> Counter[str]:
    since = len(world.rsps.calls)
    world.sync(advance=advance)
    return _calls(world, since)


def _settled(world: World) -> int:
    """The demo seen, the escalation of ``TITLE`` raised, and the echoes of its writes and the
    reach check behind: the next pass is idle. Returns the original's id."""
    world.twice = False  # every pass here is counted
    world.sync()
    original = world.ticket_by_title(TITLE)
    world.flag(original)
    world.sync()
    world.sync(advance=timedelta(minutes=10))
    world.sync(advance=timedelta(minutes=10))
    return original


def test_an_idle_pass_with_an_open_escalation_is_one_search(world: World) -> None:
    _settled(world)
    assert _pass(world) == Counter({SEARCH: 1})
    assert _pass(world) == Counter({SEARCH: 1})


def test_the_reach_check_reads_each_open_original_every_ten_minutes(world: World) -> None:
    _settled(world)
    assert _pass(world, timedelta(minutes=10)) == Counter({SEARCH: 1, "GET /api/v1/tickets/N": 1})


def test_raising_an_escalation_and_its_echo(world: World) -> None:
    """The raise on a ticket with one customer email (copied at the raise), with the caches
    of roles, groups and states already warm, as in a running worker."""
    _settled(world)
    ticket = world.sandbox.create_ticket_as_customer(
        "new.caller@residential.example", "No dial tone", "The line is dead."
    )
    _pass(world)
    world.flag(ticket)
    raised = _pass(world)
    assert raised == Counter(
        {
            SEARCH: 3,  # the poll, the flag tag, and the new ticket's customer's others
            "GET /api/v1/ticket_history/N": 1,  # who flagged
            "GET /api/v1/users/N": 1,  # the flagging agent, as the owner
            "GET /api/v1/users/search": 1,  # the placeholder customer
            "POST /api/v1/tickets": 1,  # the escalation ticket, atomically
            ADD_ARTICLE: 1,  # the history copy
            # the tag on the original, unread first: adding is idempotent, and the flag was
            # the attribute, so no tag is removed (the removal alone needs the read)
            "POST /api/v1/tags/add": 1,
            # the flag consumed, the note on the original carried as its article (the next
            # duty's time is in the create)
            "PUT /api/v1/tickets/N": 1,
            LIST_ARTICLES: 1,  # the original's messages, for the history copy
        }
    )
    writes = sum(n for call, n in raised.items() if not call.startswith(("GET", SEARCH)))
    assert writes == 4  # 3 beyond the history copy: the create, the update, the tag
    original = world.sandbox.ticket(ticket)
    assert not original["escalation_requested"]
    notes = [a for a in world.sandbox.articles_of(ticket) if a["subject"] == "Escalated"]
    assert [(n["type"], n["internal"], n["sender"]) for n in notes] == [("note", True, "Agent")]
    echo = _pass(world)
    # the poll, the flag tag (the original changed) and the carrier-route-failed tag (the
    # escalation ticket changed): a tag added unseen between the poll and the worker's own
    # write would change nothing else a search answer shows, so these stay. No article list:
    # every article on both tickets is one the worker listed or wrote (known_article).
    assert echo == Counter({SEARCH: 3})
    assert _pass(world) == Counter({SEARCH: 1})


def test_raising_on_a_flag_tag_removes_the_tag(world: World) -> None:
    """A flag that was the tag: its removal reads the tags first (a remove of an absent tag
    would still touch the ticket), once, after the create."""
    _settled(world)
    ticket = world.sandbox.create_ticket_as_customer(
        "new.caller@residential.example", "No dial tone", "The line is dead."
    )
    _pass(world)
    world.sandbox.add_tag(ticket, "escalate", login=ALICE)
    raised = _pass(world)
    assert raised["GET /api/v1/tags"] == 1
    assert raised["DELETE /api/v1/tags/remove"] == 1
    assert raised["POST /api/v1/tags/add"] == 1
    assert "escalate" not in world.sandbox.tags_of(ticket)
    assert "escalated" in world.sandbox.tags_of(ticket)


def test_copying_an_email_and_its_echo(world: World) -> None:
    original = _settled(world)
    for attachments in (0, 1, 3):
        world.sandbox.seed_customer_email(
            original,
            f"Still down, {attachments} logs attached.",
            subject="Re: broadband down",
            attachments=[(f"log{i}.txt", "text/plain", b"trace") for i in range(attachments)],
        )
        copied = _pass(world)
        expected = Counter({SEARCH: 2, LIST_ARTICLES: 1, ADD_ARTICLE: 1})
        if attachments:
            expected["GET /api/v1/ticket_attachment/N/N/N"] = attachments
        assert copied == expected, attachments
        # the echo: the worker's own copy changed the escalation ticket; its articles are
        # all known (the copy's id is recorded when it is written), so it is not listed, but
        # the carrier-route-failed tag search stays (a tag leaves no trace in the answer)
        assert _pass(world) == Counter({SEARCH: 2}), attachments
        assert _pass(world) == Counter({SEARCH: 1}), attachments
