"""Customer-facing mail: the email-article rule and the seeded auto-reply trigger."""

from __future__ import annotations

from sandbox import ZammadSandbox
from tests.sandbox.conftest import Client, new_ticket_payload


def test_seed_sends_nothing(sandbox: ZammadSandbox) -> None:
    assert sandbox.outbox == []


def test_internal_email_from_agent_is_still_sent(api: Client, sandbox: ZammadSandbox) -> None:
    article = api(
        "POST",
        "/ticket_articles",
        json={
            "ticket_id": 1,
            "type": "email",
            "internal": True,
            "to": "sean.walsh@residential.example",
            "subject": "Update",
            "body": "internal? no: sent anyway",
        },
    ).json()
    assert sandbox.outbox == [
        {
            "to": "sean.walsh@residential.example",
            "subject": "Update",
            "ticket_id": 1,
            "article_id": article["id"],
            "reason": "email_article",
        }
    ]
    assert article["message_id"].endswith("@zammad.fused.example>")
    assert article["from"] == "Fused Support <support@fused.example>"


def test_customer_sender_email_and_notes_send_nothing(api: Client, sandbox: ZammadSandbox) -> None:
    copy = {
        "ticket_id": 1,
        "type": "email",
        "sender": "Customer",
        "internal": True,
        "to": "support@fused.example",
        "body": "copy",
    }
    assert api("POST", "/ticket_articles", json=copy).status_code == 201
    note = {"ticket_id": 1, "type": "note", "internal": True, "body": "n"}
    assert api("POST", "/ticket_articles", json=note).status_code == 201
    assert sandbox.outbox == []


def test_ticket_with_customer_first_article_auto_replies(
    api: Client, sandbox: ZammadSandbox
) -> None:
    payload = new_ticket_payload(customer_id="guess:sean.walsh@residential.example")
    payload["article"] = {
        "type": "phone",
        "sender": "Customer",
        "from": "Sean Walsh <sean.walsh@residential.example>",
        "body": "logged call",
    }
    ticket = api("POST", "/tickets", json=payload).json()
    (mail,) = sandbox.outbox
    assert mail["reason"] == "auto_reply"
    assert mail["to"] == "sean.walsh@residential.example"
    assert mail["ticket_id"] == ticket["id"]
    assert mail["subject"] == f"Thanks for your inquiry ({ticket['title']})"
    articles = sandbox.articles_of(ticket["id"])
    assert [(a["type"], a["sender"]) for a in articles] == [
        ("phone", "Customer"),
        ("email", "System"),
    ]
    assert articles[1]["id"] == mail["article_id"]


def test_auto_reply_prefers_reply_to(api: Client, sandbox: ZammadSandbox) -> None:
    payload = new_ticket_payload()
    payload["article"] = {
        "type": "web",
        "sender": "Customer",
        "from": "x@residential.example",
        "reply_to": "reply@residential.example",
        "body": "web form",
    }
    api("POST", "/tickets", json=payload)
    assert sandbox.outbox[0]["to"] == "reply@residential.example"


def test_internal_note_first_article_never_auto_replies(
    api: Client, sandbox: ZammadSandbox
) -> None:
    api(
        "POST",
        "/tickets",
        json=new_ticket_payload(customer_id="guess:sean.walsh@residential.example"),
    )
    assert sandbox.outbox == []


def test_inbound_customer_ticket_auto_replies_follow_up_does_not(sandbox: ZammadSandbox) -> None:
    ticket_id = sandbox.create_ticket_as_customer(
        "orla.byrne@netreseller.example", "Another fault", "It broke again"
    )
    assert [m["reason"] for m in sandbox.outbox] == ["auto_reply"]
    assert sandbox.outbox[0]["to"] == "orla.byrne@netreseller.example"
    sandbox.seed_customer_email(ticket_id, "more detail")
    assert len(sandbox.outbox) == 1


def test_auto_reply_trigger_can_be_disabled(sandbox: ZammadSandbox) -> None:
    sandbox.set_setting("auto_reply", False)
    sandbox.create_ticket_as_customer("orla.byrne@netreseller.example", "Quiet", "x")
    assert sandbox.outbox == []
