"""The text agents read in the worker's internal notes, pinned exactly (STYLE rule 35): a
change to a note is a change agents notice, so it shows up here first."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from escalations import notes
from escalations.models import CarrierContact

LONDON = ZoneInfo("Europe/London")
AT = datetime(2026, 7, 1, 13, 5, tzinfo=UTC)  # 14:05 BST


def test_level_change_note_reads_as_the_process_says() -> None:
    change = notes.LevelChanged(
        level=3,
        level_name="Technical Escalation",
        role="Head of Service",
        owner="Jane Doe",
        owner_role="SMC Manager or Duty Manager",
        changed_at=AT,
        changed_by="Alice Agent",
        reason_label="Service outage that exceeds the SLA",
        from_level=2,
        subscribed=((23, "Hana Head", "Head of Service"),),
    )
    assert change.html(LONDON) == (
        "<p><b>Level 3 – Technical Escalation</b> (Head of Service), 14:05 Europe/London, by "
        "agent Alice Agent, reason Service outage that exceeds the SLA (from level 2).<br>"
        "<b>Owner:</b> Jane Doe (SMC Manager or Duty Manager)<br><b>Subscribed:</b> Hana Head "
        "(Head of Service)</p>"
    )


def test_level_change_note_names_subscribers_the_binding_way() -> None:
    """The owner keeps their own role; the binding decides how a subscribed person is
    written (a mention anchor in Zammad)."""
    change = notes.LevelChanged(
        level=4, level_name="Executive", role="Director", owner="Jane <Doe>",
        owner_role="SMC Manager", changed_at=AT, changed_by="Alice", reason_label="Crisis",
        from_level=3, subscribed=((7, "Dee <Director>", "Director"),),
    )  # fmt: skip
    html = change.html(LONDON, person=lambda uid, name: f"[{uid}:{name}]")
    assert "<b>Owner:</b> Jane &lt;Doe&gt; (SMC Manager)" in html
    assert "<b>Subscribed:</b> [7:Dee <Director>] (Director)" in html


def test_escalation_opened_note_names_who_why_and_when() -> None:
    html = notes.EscalationOpened(
        original_number="31001",
        original_title="Broadband <down>",
        level_name="Escalation Recipient",
        reason_label="Crisis",
        segment="Residential",
        flagged_by="Alice Agent",
        flagged_at=AT,
        callback_at=None,
        owner="Alice Agent",
    ).html(LONDON)
    assert html == (
        "<p><b>Escalation raised.</b> Every customer email on the original ticket is copied "
        "here as an internal note.</p><p><b>Original ticket:</b> #31001 Broadband &lt;down&gt;"
        "<br><b>Level:</b> 1 – Escalation Recipient<br><b>Reason:</b> Crisis<br>"
        "<b>Customer segment:</b> Residential<br><b>Flagged by:</b> Alice Agent, 14:05 "
        "Europe/London (Wed 01 Jul 2026)<br><b>Agreed callback:</b> not agreed<br>"
        "<b>Owner:</b> Alice Agent</p>"
    )


def test_copied_email_header_block() -> None:
    html = notes.CopiedEmail(
        source_number="31001",
        from_="Sean <sean@x.example>",
        to="support@fused.example",
        cc=None,
        sent_at=AT,
        subject=None,
        kind="email",
    ).header_html(LONDON)
    assert html == (
        "<p><b>Customer email copied from ticket #31001</b></p><p><b>From:</b> Sean "
        "&lt;sean@x.example&gt;<br><b>To:</b> support@fused.example<br><b>Date:</b> 14:05 "
        "Europe/London (Wed 01 Jul 2026)<br><b>Subject:</b> (no subject)</p><hr>"
    )


def test_carrier_handover_lists_every_contact() -> None:
    rows = [
        CarrierContact(
            escalation_id=1,
            source_article_id=9,
            called_at=AT,
            carrier="BT",
            stage="team_leader",
            forename="Dave",
            missing=("location",),
        ),  # fmt: skip
    ]
    html = notes.carrier_handover_note("Chris Lee", rows, "Alice Agent", AT, LONDON)
    assert html == (
        "<p><b>Carrier route failed</b> (marked by Alice Agent at 14:05 Europe/London "
        "(Wed 01 Jul 2026)). Handed over to the customer-support supervisor Chris Lee with "
        "every carrier contact logged:</p><table><tr><th>Time of call</th><th>Carrier</th>"
        "<th>Stage</th><th>Forename</th><th>Location</th><th>User ID</th><th>Complete</th></tr>"
        "<tr><td>14:05 Europe/London (Wed 01 Jul 2026)</td><td>BT</td><td>team leader</td>"
        "<td>Dave</td><td>—</td><td>—</td><td>no</td></tr></table>"
    )
    assert "No carrier contact was logged." in notes.carrier_handover_note(
        "Chris Lee", [], "Alice Agent", AT, LONDON
    )


def test_the_person_credited_says_when_it_is_the_owner_standing_in() -> None:
    basis = notes.CreditBasis
    assert notes.credited("Bob Agent", basis.HISTORY) == "Bob Agent"
    assert notes.credited("Alice Agent", basis.OWNER_HISTORY_UNREAD) == (
        "Alice Agent (the ticket's owner; the helpdesk's history could not be read)"
    )
    assert notes.credited("Alice Agent", basis.OWNER_NOT_IN_HISTORY) == (
        "Alice Agent (the ticket's owner; the helpdesk's history names no agent for it)"
    )
    assert notes.credited(None, basis.OWNER_HISTORY_UNREAD) == (
        "an unknown agent (the helpdesk's history could not be read, and the ticket has no owner)"
    )
    html = notes.carrier_handover_note(
        "Chris Lee", [], notes.credited("Alice Agent", basis.OWNER_HISTORY_UNREAD), AT, LONDON
    )
    assert html.startswith(
        "<p><b>Carrier route failed</b> (marked by Alice Agent (the ticket&#x27;s owner; the "
        "helpdesk&#x27;s history could not be read) at 14:05 Europe/London (Wed 01 Jul 2026))."
    )


def test_withheld_attachment_line_has_name_size_and_digest() -> None:
    line = notes.attachment_withheld_line("big<1>.log", 5000, "ab" * 32, 100)
    assert line == (
        f"<li>big&lt;1&gt;.log – 5,000 bytes, sha256 {'ab' * 32} – not copied: larger than the "
        "100-byte limit; open it on the original ticket</li>"
    )


def test_a_web_form_copy_says_how_it_came_in() -> None:
    """Issue 10 #12: a web-form message has no recipient; the note says why, not '(unknown)'."""
    html = notes.CopiedEmail(
        source_number="31002", from_="Sean <sean@x.example>", to=None, cc=None, sent_at=AT,
        subject="Form", kind="web",
    ).header_html(LONDON)  # fmt: skip
    assert "<b>To:</b> (none: it came in through the customer web form)" in html
    assert "(unknown)" not in html


def test_a_missed_duty_note_reads_as_a_sentence_in_neutral_words() -> None:
    """It read "no a logged phone call (a phone article) … was made": an article too many,
    and Zammad's word in a note osTicket agents read as well."""
    due = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    opens = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    tz = ZoneInfo("Europe/London")
    call = notes.duties_missed_note(["Dana"], [("morning contact call", "call", opens, due)], tz)
    assert "no call was logged on the original or the escalation ticket in the window." in call
    assert "article" not in call
    update = notes.duties_missed_note(["Dana"], [("hourly update", "update", opens, due)], tz)
    assert "no customer-visible update (not an internal note) was made on the original" in update
