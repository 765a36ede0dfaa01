"""The ``note`` effect kind on osTicket.

Core osTicket adds to a ticket only by mail (``tickets.email``), which makes a thread
*message* from the ticket's owner, not an internal note: right for a copied customer email
(``copy_article``), wrong for the worker's own notes, which would appear on the original
ticket as written by the customer (and be copied back as the customer's). So a note goes
through the escalation-api plugin (``OsTicketAdapter.add_note``) and, without the plugin
(no ``ADD_NOTE``), fails for good naming what is missing; it is never mailed.
"""

from __future__ import annotations

from typing import ClassVar

from connector.base import ArticleDraft, Capability
from connector.errors import Rejected
from connector.osticket import OsTicketAdapter
from escalations.effects.helpdesk import NOTE, AddNote, NotePayload
from escalations.models import Effect


class NoteNeedsAddNote(AddNote):
    name: ClassVar[str] = NOTE

    def apply(self, effect: Effect, payload: NotePayload) -> str | None:
        adapter = self.adapter
        if Capability.ADD_NOTE not in adapter.capabilities:
            raise Rejected(
                "internal notes need the add_note capability: osTicket has no escalation-api "
                "plugin enabled (docs/osticket.md); the note was not written"
            )
        if not isinstance(adapter, OsTicketAdapter):
            return super().apply(effect, payload)  # another adapter's own notes
        draft = ArticleDraft(body=payload.html, subject=payload.subject)
        return str(
            self.on_ticket(payload, lambda t: adapter.add_note(t, draft, marker=effect.marker))
        )

    def find(self, effect: Effect, payload: NotePayload) -> str | None:
        if Capability.ADD_NOTE in self.adapter.capabilities:
            return super().find(effect, payload)
        return None
