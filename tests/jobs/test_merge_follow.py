"""An original merged into another ticket is followed there (``jobs.sync.merging``): the
customer's emails that arrive on the merge target are copied, once each; the target's own
emails from before the escalation are not."""

from __future__ import annotations

import logging

import pytest

from tests.jobs.conftest import World

TITLE = "Broadband down since Monday"
TARGET = "HQ VPN outage"


def _customer_emails(world: World, ticket_id: int) -> list[int]:
    return [
        a["id"]
        for a in world.sandbox.articles_of(ticket_id)
        if a["sender"] == "Customer" and not a["internal"]
    ]


def test_emails_on_the_merge_target_are_copied_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    original = world.ticket_by_title(TITLE)
    target = world.ticket_by_title(TARGET)
    world.sandbox.seed_customer_email(target, "The VPN drops at noon.", subject="VPN")
    world.sync()
    world.flag(original)
    world.sync()
    world.sandbox.seed_customer_email(original, "Still down.", subject="Still down")
    world.sync()
    esc = world.the_escalation_ticket()
    before = world.copies_in(esc["id"])
    assert before
    older_on_target = _customer_emails(world, target)
    assert older_on_target  # the target's own emails, from before the escalation

    caplog.set_level(logging.INFO, logger="jobs.sync.merging")
    world.sandbox.merge(original, target)
    world.sync()
    assert f"sync.merge_followed esc={esc['escalation_key']}" in caplog.text
    # the original's emails moved to the target: already copied, not copied again; the
    # target's older emails are not part of the escalation
    assert len(world.copies_in(esc["id"])) == len(before)
    assert not any("The VPN drops at noon." in c["body"] for c in world.copies_in(esc["id"]))

    world.sandbox.seed_customer_email(target, "Now the VPN is down too.", subject="VPN too")
    world.sync()
    after = world.copies_in(esc["id"])
    assert len(after) == len(before) + 1
    assert "Now the VPN is down too." in after[-1]["body"]
    world.sync()  # and it stays one copy
    assert len(world.copies_in(esc["id"])) == len(before) + 1


def test_a_merge_into_the_escalation_ticket_itself_is_not_followed(world: World) -> None:
    original = world.ticket_by_title(TITLE)
    world.flag(original)
    world.sync()
    esc = world.the_escalation_ticket()
    copies = len(world.copies_in(esc["id"]))
    world.sandbox.merge(original, esc["id"])
    world.sync()
    assert len(world.copies_in(esc["id"])) == copies
