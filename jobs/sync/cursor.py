"""The poll cursor: where a poll starts, how far each handled ticket lets it move, and where it
must stay (``RELIABILITY.md`` §B2 "Polling cursor").

- The **signpost** is the poll's start, in the helpdesk's time (it stamps ``updated_at``),
  minus a small allowance; the cursor never passes it, so a change stamped while the poll
  runs is asked for again next time.
- A poll asks for changes since the cursor **minus the overlap**; versions seen twice are
  de-duplicated by (ticket, ``updated_at``) in the store.
- A ticket that could not be handled (or must wait) is **held**: the cursor stays before its
  ``updated_at`` until a later poll handles it.
- After the clock stepped back, a stored cursor past the new signpost is pulled back to it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from escalations.store.base import Cursor


class PollCursor:
    """One poll's view of a stream's cursor. Pure: the poll stores ``stored_value()``."""

    def __init__(
        self,
        stored: Cursor | None,
        *,
        now: datetime,
        overlap: timedelta,
        first_lookback: timedelta,
        skew: timedelta,
    ) -> None:
        self.signpost = now - skew
        self.position = min(stored.value, self.signpost) if stored else now - first_lookback
        self.since = self.position - overlap
        self.held: datetime | None = None

    def bound_signpost(self, limit: datetime) -> None:
        """Keep the signpost at or before ``limit`` (the helpdesk's own time at the poll's
        start, once measured): a poll that began with the worker's clock, ahead of the
        helpdesk's, must not move the cursor past changes the helpdesk has yet to stamp."""
        # never behind the position: that only ever moved to a stamp the helpdesk made
        self.signpost = max(self.position, min(self.signpost, limit))

    def hold(self, updated_at: datetime) -> None:
        """Keep the cursor before this version (handled by a later poll)."""
        self.held = updated_at if self.held is None else min(self.held, updated_at)

    def after(self, updated_at: datetime) -> datetime:
        """Where the cursor would be once a version stamped ``updated_at`` is handled."""
        return max(self.position, min(updated_at, self.signpost))

    def advance(self, to: datetime) -> None:
        self.position = to

    def stored_value(self, position: datetime | None = None) -> datetime:
        """The value to store for ``position`` (default: the current one), never past a held
        version or the signpost."""
        value = self.position if position is None else position
        return value if self.held is None else min(value, self.held)

    def finished_value(self) -> datetime:
        """The value to store once every change up to the signpost was read."""
        return self.stored_value(max(self.position, self.signpost))
