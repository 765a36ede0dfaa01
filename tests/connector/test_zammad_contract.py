"""Behavioural tests of the Zammad adapter against a stateful Zammad (every ``backend``):
round trips through the public API, idempotence, request counts, markers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.base import (
    ArticleDraft,
    ArticleKind,
    AttachmentUpload,
    Capability,
    HelpdeskAdapter,
    Link,
    LinkKind,
    Sender,
    TicketChanges,
    TicketDraft,
)
from connector.errors import AmbiguousWrite, AuthError, Rejected, TooLarge
from escalations.markers import marker_for
from tests.connector.conftest import Backend


def _draft(backend: Backend, **kw: object) -> TicketDraft:
    values: dict[str, object] = {
        "title": "ESC: Order 787556",
        "group": backend.group,
        "customer_id": backend.customer_id,
        "first_note": ArticleDraft(body="<p>Escalated.</p>", subject="Escalation"),
        "parent_id": backend.parent_ticket_id,
    }
    values.update(kw)
    return TicketDraft(**values)  # type: ignore[arg-type]


def test_adapter_satisfies_the_protocol(backend: Backend):
    assert isinstance(backend.adapter, HelpdeskAdapter)
    assert backend.adapter.name == "zammad"
    assert Capability.ATOMIC_CREATE in backend.adapter.capabilities


def test_me_and_users(backend: Backend):
    me = backend.adapter.me()
    assert me.is_agent
    assert backend.group in me.group_access
    agent = backend.adapter.get_user(backend.agent_id)
    assert agent.is_agent
    assert "full" in agent.group_access[backend.group]
    assert backend.adapter.find_user(agent.login.upper()) == agent
    if agent.email:
        assert backend.adapter.find_user(f"  {agent.email.title()} ") == agent
    assert backend.adapter.find_user("nobody-at-all@example.invalid") is None


def test_groups_and_states(backend: Backend):
    assert backend.group in {g.name for g in backend.adapter.list_groups()}
    states = {s.name: s.type for s in backend.adapter.list_states()}
    assert states["new"] == "new"
    assert states["open"] == "open"
    assert states["closed"] == "closed"


def test_create_ticket_is_one_atomic_request(backend: Backend):
    marker = marker_for("create_escalation", "contract:1")
    draft = _draft(
        backend, tags=frozenset({"escalation", "level-1"}), mention_user_ids=(backend.agent_id,)
    )
    created = backend.adapter.create_ticket(draft, marker=marker)
    assert backend.requests("POST") == ["POST /api/v1/tickets"]

    ticket = backend.adapter.get_ticket(created.id)
    assert ticket.number == created.number
    assert ticket.group == backend.group
    assert backend.adapter.get_tags(created.id) == {"escalation", "level-1"}
    assert backend.agent_id in backend.adapter.list_subscribers(created.id)
    assert Link(created.id, LinkKind.CHILD) in backend.adapter.list_links(backend.parent_ticket_id)
    assert Link(backend.parent_ticket_id, LinkKind.PARENT) in backend.adapter.list_links(created.id)
    first = backend.adapter.list_articles(created.id)[0]
    assert (first.kind, first.sender, first.internal) == (ArticleKind.NOTE, Sender.AGENT, True)
    assert first.body.rstrip().endswith(f"{marker.footer}</p>")


def test_find_ticket_by_marker(backend: Backend):
    marker = marker_for("create_escalation", "contract:2")
    created = backend.adapter.create_ticket(_draft(backend), marker=marker)
    before = len(backend.requests())
    found = backend.adapter.find_ticket_by_marker(marker, linked_to=backend.parent_ticket_id)
    assert found == created.id
    assert all(r.startswith("GET ") for r in backend.requests()[before:])  # reads, no search
    other = marker_for("create_escalation", "contract:other")
    assert backend.adapter.find_ticket_by_marker(other, linked_to=backend.parent_ticket_id) is None


def test_add_article_and_find_it_by_marker(backend: Backend):
    ticket = backend.adapter.create_ticket(_draft(backend), marker=marker_for("c", "3")).id
    marker = marker_for("copy_article", "contract:3")
    upload = AttachmentUpload("invoice.pdf", "application/pdf", b"%PDF-1.4\n" + bytes(range(256)))
    article_id = backend.adapter.add_article(
        ticket,
        ArticleDraft(body="<p>Customer wrote</p>", subject="Copy", attachments=(upload,)),
        marker=marker,
    )
    assert backend.adapter.find_article_by_marker(ticket, marker) == article_id
    assert backend.adapter.find_article_by_marker(ticket, marker_for("x", "y")) is None

    article = next(a for a in backend.adapter.list_articles(ticket) if a.id == article_id)
    assert article.internal
    assert article.kind is ArticleKind.NOTE
    (ref,) = article.attachments
    assert (ref.filename, ref.size, ref.content_type) == ("invoice.pdf", 265, "application/pdf")
    assert backend.adapter.fetch_attachment(ref, max_bytes=1000) == upload.data
    with pytest.raises(TooLarge):
        backend.adapter.fetch_attachment(ref, max_bytes=100)


def test_a_quoted_marker_does_not_count(backend: Backend):
    ticket = backend.adapter.create_ticket(_draft(backend), marker=marker_for("c", "4")).id
    forged = marker_for("copy_article", "contract:forged")
    quoted = f"<blockquote>{forged.footer}</blockquote><p>customer text</p>"
    backend.adapter.add_article(ticket, ArticleDraft(body=quoted), marker=marker_for("c", "5"))
    assert backend.adapter.find_article_by_marker(ticket, forged) is None


def test_set_tags_writes_only_the_difference(backend: Backend):
    ticket = backend.parent_ticket_id
    initial = backend.adapter.get_tags(ticket)
    before = len(backend.requests())
    assert backend.adapter.set_tags(ticket, present=frozenset({"esc-a", "esc-b"})) is None
    assert backend.requests()[before:] == ["POST /api/v1/tags/add"] * 2  # adding: no read
    result = backend.adapter.get_tags(ticket)
    assert result == initial | {"esc-a", "esc-b"}

    before = len(backend.requests())
    again = backend.adapter.set_tags(
        ticket, present=frozenset({"esc-a"}), absent=frozenset({"never-there"})
    )
    assert again == result
    assert backend.requests()[before:] == ["GET /api/v1/tags"]  # nothing to write

    after = backend.adapter.set_tags(ticket, absent=frozenset({"esc-a"}))
    assert "esc-a" not in after
    assert backend.adapter.get_tags(ticket) == after


def test_link_tickets_is_idempotent(backend: Backend):
    one = backend.adapter.create_ticket(
        _draft(backend, parent_id=None), marker=marker_for("c", "6")
    )
    two = backend.adapter.create_ticket(
        _draft(backend, parent_id=None), marker=marker_for("c", "7")
    )
    backend.adapter.link_tickets(one.id, two.id)
    assert Link(two.id, LinkKind.CHILD) in backend.adapter.list_links(one.id)
    assert Link(one.id, LinkKind.PARENT) in backend.adapter.list_links(two.id)
    posts = len(backend.requests("POST"))
    backend.adapter.link_tickets(one.id, two.id)
    assert len(backend.requests("POST")) == posts


def test_subscribe_is_idempotent(backend: Backend):
    ticket = backend.adapter.create_ticket(_draft(backend), marker=marker_for("c", "8")).id
    me = backend.adapter.me()
    backend.adapter.subscribe(ticket, me.id)
    assert me.id in backend.adapter.list_subscribers(ticket)
    posts = len(backend.requests("POST"))
    backend.adapter.subscribe(ticket, me.id)
    assert len(backend.requests("POST")) == posts


def test_subscribe_someone_else(backend: Backend):
    ticket = backend.adapter.create_ticket(_draft(backend), marker=marker_for("c", "8b")).id
    if not backend.may_impersonate:
        with pytest.raises(AuthError, match="admin.user"):
            backend.adapter.subscribe(ticket, backend.agent_id)
        return
    backend.adapter.subscribe(ticket, backend.agent_id)
    assert backend.agent_id in backend.adapter.list_subscribers(ticket)
    posts = len(backend.requests("POST"))
    backend.adapter.subscribe(ticket, backend.agent_id)
    assert len(backend.requests("POST")) == posts


def test_update_ticket_reads_back(backend: Backend):
    ticket = backend.adapter.create_ticket(_draft(backend), marker=marker_for("c", "9")).id
    updated = backend.adapter.update_ticket(
        ticket, TicketChanges(owner_id=backend.agent_id, state="open")
    )
    assert updated.owner_id == backend.agent_id
    assert updated.state == "open"
    with pytest.raises(Rejected, match="owner reset to unassigned"):
        backend.adapter.update_ticket(ticket, TicketChanges(owner_id=backend.outsider_id))


def test_changed_tickets_sees_new_tickets_once(backend: Backend):
    since = backend.clock.now()
    backend.clock.advance(timedelta(seconds=1))
    ids = [
        backend.adapter.create_ticket(_draft(backend), marker=marker_for("c", f"p{n}")).id
        for n in range(5)
    ]
    seen = [t.id for t in backend.adapter_with(page_size=2).changed_tickets(since)]
    assert [i for i in seen if i in ids] == ids  # oldest first, each once
    assert len(seen) == len(set(seen))


def test_idle_poll_is_one_request(backend: Backend):
    future = backend.clock.now() + timedelta(hours=1)
    before = len(backend.requests())
    assert list(backend.adapter.changed_tickets(future)) == []
    assert backend.requests()[before:] == ["POST /api/v1/tickets/search"]


# -- faults (backends with a fault queue: the sandbox) --------------------------------------


def _faults(backend: Backend):
    if backend.faults is None:
        pytest.skip(f"the {backend.name} backend injects no faults")
    import sandbox

    return sandbox


@pytest.mark.parametrize("mode", ["timeout", "reset"])
def test_lost_create_is_ambiguous_and_found_by_marker(backend: Backend, mode: str):
    """§B8 "ambiguous write": applied, answer lost → no blind retry; the marker finds it."""
    sandbox = _faults(backend)
    marker = marker_for("create_escalation", f"lost:{mode}")
    backend.faults.add(sandbox.LoseResponse(method="POST", path=r"^/api/v1/tickets$", mode=mode))
    with pytest.raises(AmbiguousWrite):
        backend.adapter.create_ticket(_draft(backend), marker=marker)
    assert backend.requests("POST") == ["POST /api/v1/tickets"]
    found = backend.adapter.find_ticket_by_marker(marker, linked_to=backend.parent_ticket_id)
    assert found is not None
    children = [
        lk for lk in backend.adapter.list_links(backend.parent_ticket_id)
        if lk.kind is LinkKind.CHILD
    ]  # fmt: skip
    assert len(children) == 1


def test_truncated_article_answer_is_ambiguous_and_found_by_marker(backend: Backend):
    sandbox = _faults(backend)
    ticket = backend.adapter.create_ticket(_draft(backend), marker=marker_for("c", "t")).id
    marker = marker_for("copy_article", "truncated")
    backend.faults.add(sandbox.Truncate(method="POST", path="ticket_articles"))
    with pytest.raises(AmbiguousWrite):
        backend.adapter.add_article(ticket, ArticleDraft(body="<p>x</p>"), marker=marker)
    assert backend.adapter.find_article_by_marker(ticket, marker) is not None


def test_rate_limited_create_waits_and_creates_once(backend: Backend):
    sandbox = _faults(backend)
    backend.faults.add(sandbox.RateLimited(method="POST", path=r"^/api/v1/tickets$", retry_after=7))
    marker = marker_for("create_escalation", "429")
    backend.adapter.create_ticket(_draft(backend), marker=marker)
    assert max(backend.clock.sleeps) >= 7
    assert backend.requests("POST") == ["POST /api/v1/tickets"] * 2
    assert backend.adapter.find_ticket_by_marker(marker, linked_to=backend.parent_ticket_id)


def test_server_errors_on_reads_are_retried(backend: Backend):
    sandbox = _faults(backend)
    backend.faults.add(sandbox.ServerError(method="GET", path="/tickets/", status=502, times=2))
    assert backend.adapter.get_ticket(backend.parent_ticket_id).id == backend.parent_ticket_id
    assert len(backend.requests("GET")) == 3


def test_refused_create_is_retried(backend: Backend):
    """§B8 "failure before send": retried with back-off; exactly one remote object."""
    sandbox = _faults(backend)
    backend.faults.add(sandbox.Refuse(method="POST", path=r"^/api/v1/tickets$", times=2))
    marker = marker_for("create_escalation", "refused")
    backend.adapter.create_ticket(_draft(backend), marker=marker)
    assert len(backend.clock.sleeps) >= 2
    assert backend.adapter.find_ticket_by_marker(marker, linked_to=backend.parent_ticket_id)
    children = [
        lk for lk in backend.adapter.list_links(backend.parent_ticket_id)
        if lk.kind is LinkKind.CHILD
    ]  # fmt: skip
    assert len(children) == 1
