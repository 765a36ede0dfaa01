"""Articles: defaults, limits, attachments, inline images, mention anchors, updated_at."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

from escalations.clock import FakeClock
from sandbox import ZammadSandbox
from tests.sandbox.conftest import Client


def _post(api: Client, **fields: Any) -> Any:
    return api("POST", "/ticket_articles", json={"ticket_id": 1, "body": "hello", **fields})


def test_defaults_note_agent_not_internal(api: Client, sandbox: ZammadSandbox) -> None:
    response = _post(api)
    assert response.status_code == 201
    article = response.json()
    assert article["type"] == "note"
    assert article["sender"] == "Agent"
    assert article["internal"] is False  # the API default: visible to the customer
    assert article["content_type"] == "text/plain"
    assert article["from"] == "Escalation Bot"  # notes carry the author's name
    assert article["created_by"] == "escalation-bot"


def test_empty_body_ok_missing_body_422(api: Client) -> None:
    assert _post(api, body="").status_code == 201
    response = api("POST", "/ticket_articles", json={"ticket_id": 1})
    assert response.status_code == 422
    assert response.json()["error"] == "Need at least an 'article body' field."


def test_body_too_large(api: Client) -> None:
    response = _post(api, body="x" * 1_500_001)
    assert response.status_code == 422
    assert response.json()["error"].startswith("body of article is too large")
    assert _post(api, body="x" * 1_500_000).status_code == 201


def test_content_type_limit(api: Client) -> None:
    response = _post(api, content_type="text/html; charset=utf-8")
    assert response.status_code == 422
    assert response.json()["error"].startswith("Error ID ")


def test_email_needs_a_single_valid_to(api: Client) -> None:
    for to in (None, "not an address", "a@x.example, b@x.example"):
        fields = {"type": "email", "internal": True} | ({"to": to} if to else {})
        response = _post(api, **fields)
        assert response.status_code == 422
        assert (
            response.json()["error"]
            == "Sending an email without a valid recipient is not possible."
        )


def test_attachments_strict_base64_and_download(api: Client, sandbox: ZammadSandbox) -> None:
    data = b"line one\nline two\n"
    encoded = base64.b64encode(data).decode()
    wrapped = encoded[:8] + "\r\n" + encoded[8:]  # CR/LF are stripped first
    article = _post(
        api, attachments=[{"filename": "notes.txt", "data": wrapped, "mime-type": "text/plain"}]
    ).json()
    (att,) = article["attachments"]
    assert att["size"] == str(len(data))
    assert att["preferences"] == {"Mime-Type": "text/plain"}
    raw = api("GET", f"/ticket_attachment/1/{article['id']}/{att['id']}")
    assert raw.content == data
    assert raw.headers["Content-Type"] == "text/plain"
    bad = _post(api, attachments=[{"filename": "x", "data": "abc", "mime-type": "text/plain"}])
    assert bad.status_code == 422
    missing = _post(api, attachments=[{"filename": "x", "data": encoded}])
    assert (
        missing.json()["error"]
        == "Attachment needs 'mime-type' param for attachment with index '0'"
    )


def test_seeded_pdf_attachment(api: Client) -> None:
    (article,) = api("GET", "/ticket_articles/by_ticket/2").json()
    pdf = next(a for a in article["attachments"] if a["filename"].endswith(".pdf"))
    raw = api("GET", f"/ticket_attachment/2/{article['id']}/{pdf['id']}")
    assert raw.content.startswith(b"%PDF-")


def test_inline_data_image_becomes_hidden_inline_attachment(api: Client) -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    body = f'<p>see</p><img src="data:image/png;base64,{png}">'
    article = _post(api, content_type="text/html", body=body).json()
    assert article["attachments"] == []  # inline images are left out of attachments[]
    assert f"/api/v1/ticket_attachment/1/{article['id']}/" in article["body"]
    assert "?view=inline" in article["body"]


def test_by_ticket_ordered_and_show(api: Client, sandbox: ZammadSandbox, clock: FakeClock) -> None:
    clock.advance(timedelta(seconds=1))
    created = _post(api, internal=True).json()
    listed = api("GET", "/ticket_articles/by_ticket/1").json()
    assert [a["id"] for a in listed] == [1, 2, created["id"]]
    assert api("GET", f"/ticket_articles/{created['id']}").json()["internal"] is True
    assert api("GET", "/ticket_articles/999").status_code == 404


def test_article_bumps_ticket(api: Client, sandbox: ZammadSandbox, clock: FakeClock) -> None:
    clock.advance(timedelta(minutes=3))
    _post(api, internal=True)
    assert sandbox.ticket(1)["updated_at"] == "2026-12-01T09:03:00.000Z"
    assert sandbox.ticket(1)["article_count"] == 3


def test_article_needs_create_access(sandbox: ZammadSandbox, api: Client) -> None:
    # Jane has only read on Support
    token = sandbox.issue_token("duty.manager@fused.example")
    response = api("POST", "/ticket_articles", json={"ticket_id": 1, "body": "x"}, token=token)
    assert response.status_code == 403


def test_mention_anchor_subscribes(api: Client, sandbox: ZammadSandbox) -> None:
    bob = sandbox.user_id("bob.agent@fused.example")
    body = f'<p>FYI <a data-mention-user-id="{bob}">Bob</a></p>'
    assert _post(api, content_type="text/html", body=body, internal=True).status_code == 201
    assert sandbox.subscribers_of(1) == [bob]
    lloyd = sandbox.user_id("lloyd.foley@jt.example")  # no access to Support
    body = f'<a data-mention-user-id="{lloyd}">Lloyd</a>'
    assert _post(api, content_type="text/html", body=body).status_code == 422


def test_mention_anchor_in_inbound_mail_ignored(sandbox: ZammadSandbox) -> None:
    bob = sandbox.user_id("bob.agent@fused.example")
    sandbox.seed_customer_email(
        1, f'<a data-mention-user-id="{bob}">x</a>', content_type="text/html"
    )
    assert sandbox.subscribers_of(1) == []


def test_agent_reply_on_new_ticket_opens_it(api: Client, sandbox: ZammadSandbox) -> None:
    assert sandbox.ticket(3)["state"] == "new"
    api(
        "POST",
        "/ticket_articles",
        json={"ticket_id": 3, "body": "we are on it", "type": "phone", "internal": False},
    )
    assert sandbox.ticket(3)["state"] == "open"


def test_preferences_stored_as_sent(api: Client) -> None:
    article = _post(api, preferences={"zsync_src_article_id": 9}).json()
    assert article["preferences"] == {"zsync_src_article_id": 9}
    assert "references" not in article
