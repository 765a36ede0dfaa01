"""Sync (DESIGN.md rules 1–5): the ``sync`` job polls and records what each change means
(``poll``, with ``flagging``, ``levels``, ``carrier`` and the ``cursor``); the ``copy`` job turns
scan requests into copies of customer messages (``copying``). The worker runs the effects step
after each, so on every tick: poll → writes → copies → writes."""

from __future__ import annotations

from jobs.sync import copying, poll

NAME = poll.NAME
COPY = copying.NAME
run = poll.run
run_copy = copying.run

__all__ = ["COPY", "NAME", "copying", "poll", "run", "run_copy"]
