"""The ``note`` effect kind for an osTicket adapter that cannot write internal notes.

Core osTicket adds to a ticket only by mail (``tickets.email``), which makes a thread
*message* from the ticket's owner, not an internal note: right for a copied customer email
(``copy_article``), wrong for the worker's own notes, which would appear on the original
ticket as written by the customer (and be copied back as the customer's). So without
``ADD_NOTE`` a note fails for good, naming what is missing, and is never mailed.
"""

from __future__ import annotations

from typing import ClassVar

from connector.base import Capability
from connector.errors import Rejected
from escalations.effects.helpdesk import NOTE, AddNote, NotePayload
from escalations.models import Effect


class NoteNeedsAddNote(AddNote):
    name: ClassVar[str] = NOTE

    def apply(self, effect: Effect, payload: NotePayload) -> str | None:
        if Capability.ADD_NOTE in self.adapter.capabilities:
            return super().apply(effect, payload)
        raise Rejected(
            "internal notes need the add_note capability, which core osTicket lacks (the "
            "escalation-api plugin is not built yet); the note was not written"
        )

    def find(self, effect: Effect, payload: NotePayload) -> str | None:
        if Capability.ADD_NOTE in self.adapter.capabilities:
            return super().find(effect, payload)
        return None
