"""Zammad's caller log: calls the provider's phone system reports through the CTI
integration, and ``GET /api/v1/cti/log``.

A call is created ringing (event ``newCall``), may be answered (``answer``: ``start_at`` is
stamped) and ends (``hangup``: ``end_at``, and the talking or waiting time). Zammad matches
each number against the phone fields of its users and keeps the matches in the row's
preferences, ``level: "known"`` for a user's own number. The list answers the newest
``view_limit`` calls (60), newest first, and only to a caller with ``cti.agent``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sandbox.records import CallLogRow, iso, to_ms
from sandbox.state import SandboxState


def digits(number: str) -> str:
    """A number as the caller log compares it: digits only, without an international 00."""
    only = re.sub(r"\D", "", number or "")
    return only[2:] if only.startswith("00") else only


def caller_ids(state: SandboxState, number: str) -> list[dict[str, Any]]:
    """The users whose phone field holds ``number``, as Zammad stores the matches."""
    wanted = digits(number)
    if not wanted:
        return []
    return [
        {
            "caller_id": wanted,
            "comment": None,
            "level": "known",
            "object": "User",
            "o_id": user.id,
            "user_id": user.id,
        }
        for user in state.db.users.values()
        if user.phone and digits(user.phone) == wanted
    ]


def record_call(
    state: SandboxState,
    *,
    direction: str,
    from_: str,
    to: str,
    agent: str | None,
    answered_after: timedelta | None,
    talk: timedelta,
) -> CallLogRow:
    """A whole call, ringing from now: answered after ``answered_after`` (``None``: nobody
    took it) and hung up after ``talk`` (or when the caller gave up)."""
    if direction not in ("in", "out"):
        raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
    rang = state.now()
    number, side = (to, "to") if direction == "out" else (from_, "from")
    row = CallLogRow(
        id=state.next_id("cti_logs"),
        direction=direction,
        from_=digits(from_),
        to=digits(to),
        call_id=f"{rang.timestamp():.0f}-{state.next_id('cti_call_ids')}",
        state="hangup",
        created_at=rang,
        updated_at=rang,
        initialized_at=rang,
        from_comment=agent if direction == "out" else None,
        to_comment=agent if direction == "in" else None,
        queue=digits(from_ if direction == "out" else to),
        preferences={side: matches} if (matches := caller_ids(state, number)) else {},
    )
    if answered_after is None:
        ended = to_ms(rang + talk)
        row.duration_waiting_time = int(talk.total_seconds())
        row.comment = "cancel"
        row.done = direction == "out"  # an inbound call nobody took is left to call back
    else:
        row.start_at = to_ms(rang + answered_after)
        ended = to_ms(row.start_at + talk)
        row.duration_waiting_time = int(answered_after.total_seconds())
        row.duration_talking_time = int(talk.total_seconds())
        row.comment = "normalClearing"
    row.end_at = row.updated_at = ended
    state.db.cti_logs[row.id] = row
    return row


def call_json(row: CallLogRow) -> dict[str, Any]:
    """A row as ``Cti::Log#attributes`` renders it (with the virtual ``*_pretty`` numbers)."""
    return {
        "id": row.id,
        "direction": row.direction,
        "state": row.state,
        "from": row.from_,
        "from_pretty": _pretty(row.from_),
        "from_comment": row.from_comment,
        "to": row.to,
        "to_pretty": _pretty(row.to),
        "to_comment": row.to_comment,
        "queue": row.queue,
        "call_id": row.call_id,
        "comment": row.comment,
        "initialized_at": iso(row.initialized_at),
        "start_at": iso(row.start_at),
        "end_at": iso(row.end_at),
        "duration_waiting_time": row.duration_waiting_time,
        "duration_talking_time": row.duration_talking_time,
        "done": row.done,
        "preferences": {
            **row.preferences,
            "from_pretty": _pretty(row.from_),
            "to_pretty": _pretty(row.to),
        },
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def newest_calls(state: SandboxState) -> list[CallLogRow]:
    rows = sorted(state.db.cti_logs.values(), key=lambda r: (r.created_at, r.id), reverse=True)
    return rows[: state.settings.cti_view_limit]


def _pretty(number: str) -> str:
    return f"+{number}" if number.isdigit() else number
