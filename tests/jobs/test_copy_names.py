"""Attachment names on escalation copies (issue 10 #9): a customer's hostile file names are
re-uploaded under safe ones, and an attachment without a name no longer makes the helpdesk
refuse (422) the whole copy. Through the sandbox and the real adapter."""

from __future__ import annotations

from escalations.models import EffectState
from tests.jobs.conftest import World

TITLE = "Broadband down since Monday"


def _escalate(world: World) -> tuple[int, int]:
    original = world.ticket_by_title(TITLE)
    world.flag(original)
    world.sync()
    return original, world.the_escalation_ticket()["id"]


def test_hostile_attachment_names_land_on_the_copy_as_safe_ones(world: World) -> None:
    original, esc = _escalate(world)
    world.sandbox.seed_customer_email(
        original,
        "My files.",
        subject="Re: files",
        attachments=[
            ("../../etc/passwd", "text/plain", b"root:x:0:0:root:/root:/bin/sh\n"),
            ("C:\\temp\\x.txt", "text/plain", b"x"),
            ("nul.pdf", "application/pdf", b"%PDF-1.7"),
            ("<img src=x onerror=alert(1)>.pdf", "application/pdf", b"%PDF-1.7"),
        ],
    )
    world.sync()
    copy = world.copies_in(esc)[-1]
    assert "My files." in copy["body"]
    assert [a["filename"] for a in copy["attachments"]] == [
        "passwd",
        "x.txt",
        "_nul.pdf",
        "_img src=x onerror=alert(1)_.pdf",
    ]
    assert world.store.effects(EffectState.FAILED) == []


def test_an_attachment_without_a_name_is_copied_under_the_fallback_name(world: World) -> None:
    original, esc = _escalate(world)
    article_id = world.sandbox.seed_customer_email(
        original,
        "A file with no name.",
        subject="Re: unnamed",
        attachments=[("named-for-now.bin", "application/octet-stream", b"\x00\x01")],
    )
    # mail clients send parts without a name, and the helpdesk reads them back as ""; the
    # sandbox (like Zammad) refuses "" on upload, so the name is taken away behind its back
    with world.sandbox.lock:
        (attachment,) = world.sandbox.state.db.articles[article_id].attachments
        attachment.filename = ""
    world.sync()
    copy = world.copies_in(esc)[-1]
    assert "A file with no name." in copy["body"]
    assert [a["filename"] for a in copy["attachments"]] == ["attachment"]
    assert world.store.effects(EffectState.FAILED) == []
