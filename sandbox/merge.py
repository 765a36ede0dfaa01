"""Merging one ticket into another (``tickets_controller.rb#ticket_merge``,
``Service::Ticket::Merge``, ``ticket.rb#merge_to``).

``PUT /api/v1/ticket_merge/{source_ticket_id}/{target_ticket_number}``:

- a target number or source id that matches no ticket answers **200**
  ``{"result": "failed", "message": …}``, not an error status;
- the caller needs update access to both tickets (403 otherwise);
- a target in a ``merged`` state, or the source itself as target, is a 422;
- the source's articles move to the target (each touched first; the ticket's
  ``article_count`` columns are not recounted: ``update_all`` skips callbacks), and the
  source gets a new public ``merged`` note;
- its mentions and links move to the target (a link that would join the two tickets is
  dropped first), then ``target --parent--> source`` is added;
- the source's state becomes the ``merged`` one and its owner 1; both tickets are bumped;
- history: ``received_merge`` on the target and ``merged_into`` on the source, each with
  ``id_from`` the source and ``id_to`` the target.
"""

from __future__ import annotations

from typing import Any

from sandbox.actor import Actor
from sandbox.records import ApiError, Article, Ticket, forbidden
from sandbox.relations import RelationRules
from sandbox.state import SandboxState
from sandbox.views import ticket_json


def merge(
    state: SandboxState, relations: RelationRules, actor: Actor, source_id: object, number: str
) -> dict[str, Any]:
    """The controller: look both tickets up, check access, merge; the answer's body."""
    target = state.ticket_by_number(number)
    if target is None:
        return {"result": "failed", "message": "The target ticket number could not be found."}
    source = state.db.tickets.get(_as_id(source_id))
    if source is None:
        return {"result": "failed", "message": "The source ticket could not be found."}
    for ticket in (source, target):
        if not actor.is_agent(state) or not actor.may(state, ticket, "change"):
            raise forbidden()
    merge_to(state, relations, source, target, by=actor.user.id)
    return {
        "result": "success",
        "target_ticket": ticket_json(state, target),
        "source_ticket": ticket_json(state, source),
    }


def merge_to(
    state: SandboxState, relations: RelationRules, source: Ticket, target: Ticket, *, by: int
) -> None:
    """``Ticket#merge_to``."""
    if state.state_type_name(target.state_id) == "merged":
        raise ApiError(422, "It is not possible to merge into an already merged ticket.")
    if source.id == target.id:
        raise ApiError(422, "A ticket cannot be merged into itself.")
    now = state.now()
    for article in state.articles_of(source.id):
        article.updated_at = now
        article.ticket_id = target.id
    state.touch(target)
    state.history_add("received_merge", "Ticket", target.id, by, id_from=source.id, id_to=target.id)
    state.history_add("merged_into", "Ticket", source.id, by, id_from=source.id, id_to=target.id)
    _merge_note(state, source, by=by)
    _move_mentions(state, source, target)
    _move_links(state, source, target)
    relations.link_unchecked("parent", target.id, source.id)
    merged = next(s for s in state.db.states.values() if state.state_type_name(s.id) == "merged")
    source.state_id = merged.id
    source.owner_id = 1
    state.saved(source, by)
    state.touch(target)


def _merge_note(state: SandboxState, source: Ticket, *, by: int) -> None:
    now = state.now()
    note_type = state.article_type_id("note")
    agent = state.sender_id("Agent")
    assert note_type is not None
    assert agent is not None
    article = Article(
        id=state.next_id("articles"),
        ticket_id=source.id,
        type_id=note_type,
        sender_id=agent,
        body="merged",
        content_type="text/plain",
        internal=False,
        created_at=now,
        updated_at=now,
        created_by_id=by,
        updated_by_id=by,
    )
    state.db.articles[article.id] = article
    source.article_count += 1
    state.history_add("created", "Ticket::Article", article.id, by, related=("Ticket", source.id))


def _move_mentions(state: SandboxState, source: Ticket, target: Ticket) -> None:
    """``Mention.duplicates`` are destroyed first, the rest re-pointed."""
    on_target = {m.user_id for m in state.mentions_of(target.id)}
    for mention in state.mentions_of(source.id):
        if mention.user_id in on_target:
            del state.db.mentions[mention.id]
        else:
            mention.ticket_id = target.id


def _move_links(state: SandboxState, source: Ticket, target: Ticket) -> None:
    """``Link.duplicates`` (links between the two tickets) are destroyed, then every link of
    the source is re-pointed to the target, with no callbacks (``update_all``)."""
    for link in list(state.db.links.values()):
        if {link.source_value, link.target_value} == {source.id, target.id}:
            del state.db.links[link.id]
    for link in state.db.links.values():
        if link.source_value == source.id:
            link.source_value = target.id
        if link.target_value == source.id:
            link.target_value = target.id


def _as_id(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1
