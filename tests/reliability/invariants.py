"""The §B4 invariants (``RELIABILITY.md``), checked against a sandbox and a store. Shared by
the crash-point tests, the kill soak, the model test and the two-worker PostgreSQL soak.

``check_invariants(sandbox, store)`` collects every broken invariant and raises one
``AssertionError`` listing them all; it returns a ``Report`` for further assertions. ``store``
is the path of a SQLite store file, or a ``postgresql://`` URL: then the PostgreSQL store
(``escalations/store/postgres``) is read, and the same invariants are checked. Its
``integrity_check`` is the store's own (the schema is the one migrated to), not SQLite's
``PRAGMA integrity_check``.

1. For each escalation exactly one escalation ticket carries its key (and no ticket carries a
   key the store does not know).
2. For each inbound customer article in scope (sender Customer, type email or web, on the
   original ticket — or a later ticket of the same customer — of an active escalation) exactly
   one copy exists in its escalation ticket, found by the copy's marker.
3. After one clean recovery pass no effect is ``pending`` or ``in_flight``.
4. The store's integrity check is ``ok`` (SQLite: ``PRAGMA integrity_check``), and what the
   store acknowledged is in the helpdesk (done effects point at the object carrying their
   marker) and vice versa (every marker the bot wrote belongs to a recorded effect: no intent
   was lost).
5. Every cursor is at or before its signpost.

With ``quiesced=False`` (in the middle of a run) "exactly one" becomes "at most one" and
invariant 3 is skipped.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from connector.base import MARKER_RE
from escalations.clock import SystemClock
from escalations.effects.helpdesk import COPY_ARTICLE, CREATE_ESCALATION, NOTE, UPDATE_WITH_NOTE
from escalations.markers import marker_for
from escalations.models import ACTIVE_STATES, EffectState, Escalation
from escalations.store.base import Store
from escalations.store.sqlite import SqliteStore
from sandbox import ZammadSandbox

ESCALATION_KEY_FIELD = "escalation_key"
BOT_LOGIN = "escalation-bot"
IN_SCOPE_TYPES = ("email", "web")
MARKED_KINDS = (NOTE, COPY_ARTICLE, UPDATE_WITH_NOTE)
"""Effect kinds whose write is an article carrying the marker."""
UNNAMED_OK = (UPDATE_WITH_NOTE,)
"""Marked kinds that may be done without naming their article (an update's answer lists the
ticket's article ids, which need not tell which one is the note)."""
POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")


def is_postgresql(store: Path | str) -> bool:
    """``store`` names a PostgreSQL database (a URL), not a SQLite file."""
    return isinstance(store, str) and store.startswith(POSTGRESQL_SCHEMES)


@dataclass
class Report:
    """What was checked, for assertions beyond the invariants."""

    escalation_tickets: dict[str, int] = field(default_factory=dict)
    """Escalation key → the one escalation ticket carrying it."""
    copies: dict[tuple[str, int], int] = field(default_factory=dict)
    """(escalation key, source article id) → the one article carrying the copy's marker."""
    effects: Counter[str] = field(default_factory=Counter)
    """Effects by state."""


def copy_marker(escalation_key: str, article_id: int) -> str:
    """The marker of the copy of ``article_id`` into the ticket of ``escalation_key``."""
    return marker_for(COPY_ARTICLE, f"copy:{escalation_key}:{article_id}").value


def _last_marker(body: str) -> str | None:
    found = MARKER_RE.findall(body or "")
    return found[-1] if found else None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def check_invariants(
    sandbox: ZammadSandbox,
    store_path: Path | str,
    *,
    quiesced: bool = True,
    failed_ok: bool = False,
    deleted: frozenset[int] | set[int] = frozenset(),
) -> Report:
    """Check §B4 invariants 1–5; raise ``AssertionError`` naming every one that is broken.

    ``store_path``: the SQLite store file, or a ``postgresql://`` URL of the store's database.
    ``quiesced``: the worker has made a clean recovery pass since the last fault (so every
    escalation has its ticket, every copy is made and nothing is pending). ``failed_ok``:
    effects in state ``failed`` are expected (a test injected permanent errors); then an
    escalation whose create failed may have no ticket, and an article whose copy failed no
    copy (never two). ``deleted``: tickets an agent deleted; an effect that wrote to one of
    them may have failed (the ticket was gone) or lost its article with the ticket."""
    postgresql = is_postgresql(store_path)
    if not postgresql and not Path(store_path).is_file():
        raise AssertionError(f"no store at {store_path}: the worker never ran there")
    problems: list[str] = []
    report = Report()
    tickets = sandbox.tickets
    articles = {tid: sandbox.articles_of(tid) for tid in tickets}
    cursor_problems: list[str] = []
    store: Store = (
        _postgres_store(str(store_path)) if postgresql else SqliteStore(store_path, SystemClock())
    )
    try:
        integrity = store.integrity_check()
        if integrity != ["ok"]:
            check = "integrity_check" if postgresql else "PRAGMA integrity_check"
            problems.append(f"inv 4: {check} returned {integrity}")
        escalations = store.escalations_in()
        effects = store.effects()
        copied = {esc.id: store.copied_articles(esc.id) for esc in escalations}
        if postgresql:
            cursor_problems = _postgres_cursors(store)
    finally:
        store.close()
    report.effects.update(e.state.value for e in effects)

    # -- 1. one escalation ticket per escalation ----------------------------------------------
    carrying: dict[str, list[int]] = {}
    for tid, ticket in tickets.items():
        if key := ticket.get(ESCALATION_KEY_FIELD):
            carrying.setdefault(str(key), []).append(tid)
    known = {esc.key for esc in escalations}
    gave_up = {
        e.key for e in effects if e.kind == CREATE_ESCALATION and e.state is EffectState.FAILED
    }  # with failed_ok, an escalation whose create failed has no ticket
    for key, tids in sorted(carrying.items()):
        if key not in known:
            problems.append(f"inv 1: tickets {tids} carry escalation key {key!r} the store lacks")
    for esc in escalations:
        found = carrying.get(esc.key, [])
        # a deleted escalation ticket is noticed at the next write to it, not before
        must_exist = (
            quiesced
            and esc.state in ACTIVE_STATES
            and esc.key not in gave_up
            and esc.escalation_ticket_id not in deleted
        )
        if len(found) > 1 or (must_exist and len(found) != 1):
            problems.append(
                f"inv 1: escalation {esc.key} ({esc.state}) is carried by {len(found)} "
                f"tickets {found}, expected exactly one"
            )
        if len(found) == 1:
            report.escalation_tickets[esc.key] = found[0]
            if esc.escalation_ticket_id not in (None, found[0]) or (
                quiesced and esc.state in ACTIVE_STATES and esc.escalation_ticket_id is None
            ):
                problems.append(
                    f"inv 4: escalation {esc.key} records ticket {esc.escalation_ticket_id}, "
                    f"the helpdesk has ticket {found[0]}"
                )

    # -- 2. one copy per in-scope customer article ----------------------------------------------
    refused_copies = {
        e.key for e in effects if e.kind == COPY_ARTICLE and e.state is EffectState.FAILED
    }  # with failed_ok, an article whose copy failed for good has no copy (and never two)
    for esc in escalations:
        esc_ticket = esc.escalation_ticket_id or report.escalation_tickets.get(esc.key)
        if esc.state not in ACTIVE_STATES or esc_ticket not in tickets:
            continue
        bodies = [a["body"] or "" for a in articles[esc_ticket]]
        for source in _in_scope(esc, tickets, articles):
            marker = copy_marker(esc.key, source["id"])
            holders = [
                a["id"] for a, body in zip(articles[esc_ticket], bodies, strict=True)
                if marker in body
            ]  # fmt: skip
            gave_up_copy = failed_ok and f"copy:{esc.key}:{source['id']}" in refused_copies
            if len(holders) > 1 or (quiesced and not gave_up_copy and len(holders) != 1):
                problems.append(
                    f"inv 2: customer article {source['id']} (ticket {source['ticket_id']}, "
                    f"{source['subject']!r}) has {len(holders)} copies {holders} in escalation "
                    f"ticket {esc_ticket} (marker {marker}), expected exactly one"
                )
            if len(holders) == 1:
                report.copies[(esc.key, source["id"])] = holders[0]
        recorded = {c.source_article_id: c.copy_article_id for c in copied[esc.id]}
        for (key, source_id), copy_id in report.copies.items():
            allowed = (copy_id,) if quiesced else (None, copy_id)
            if key == esc.key and recorded.get(source_id) not in allowed:
                problems.append(
                    f"inv 4: the store says article {source_id} was copied to "
                    f"{recorded.get(source_id, '(not recorded)')}, the helpdesk has the copy "
                    f"in {copy_id}"
                )

    # -- 3. nothing left pending or in flight ----------------------------------------------------
    unfinished = [e for e in effects if e.state in (EffectState.PENDING, EffectState.IN_FLIGHT)]
    if quiesced and unfinished:
        problems += [
            f"inv 3: effect {e.id} {e.kind} {e.key} is {e.state} after a clean pass "
            f"(attempts {e.attempts}, not before {e.not_before.isoformat()}, "
            f"last error {e.last_error!r})"
            for e in unfinished
        ]
    target = _targets(escalations, deleted)
    if not failed_ok:
        problems += [
            f"inv 3: effect {e.id} {e.kind} {e.key} failed: {e.last_error}"
            for e in effects
            if e.state is EffectState.FAILED and target(e) is None
        ]

    # -- 4. the store and the helpdesk agree ----------------------------------------------------
    problems += _agreement(sandbox, tickets, articles, effects, lambda e: target(e) is not None)

    # -- 5. cursors -----------------------------------------------------------------------------
    problems += cursor_problems if postgresql else _cursors(Path(store_path))

    if problems:
        raise AssertionError(
            f"{len(problems)} invariant(s) broken:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return report


def _in_scope(
    esc: Escalation, tickets: dict[int, dict[str, Any]], articles: dict[int, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Customer messages the escalation must copy: all on the original ticket, and all on the
    same customer's tickets created since the flag (the sync job's rule)."""
    sources = [esc.original_ticket_id]
    for tid, ticket in sorted(tickets.items()):
        if tid == esc.original_ticket_id or ticket.get(ESCALATION_KEY_FIELD):
            continue
        created = _time(ticket.get("created_at"))
        if (
            ticket.get("customer_id") == esc.customer_id
            and esc.flagged_at is not None
            and created is not None
            and created >= esc.flagged_at
        ):
            sources.append(tid)
    return [
        a
        for tid in sources
        for a in articles.get(tid, [])
        if a["sender"] == "Customer" and a["type"] in IN_SCOPE_TYPES
    ]


def _targets(
    escalations: list[Escalation], deleted: frozenset[int] | set[int]
) -> Callable[[Any], int | None]:
    """``target(effect)``: the deleted ticket the effect wrote to (or was to write to, or
    link to), else None."""
    ticket_of = {esc.id: esc.escalation_ticket_id for esc in escalations}

    def target(effect: Any) -> int | None:
        payload = effect.payload
        candidates = [payload.get("ticket_id"), payload.get("parent_id")]
        if (of := payload.get("escalation_ticket_of")) is not None:
            candidates.append(ticket_of.get(of))
        if effect.kind == CREATE_ESCALATION and effect.remote_id:
            candidates.append(int(str(effect.remote_id).split("#", 1)[0]))
        return next((t for t in candidates if t is not None and t in deleted), None)

    return target


def _agreement(
    sandbox: ZammadSandbox,
    tickets: dict[int, dict[str, Any]],
    articles: dict[int, list[dict[str, Any]]],
    effects: list[Any],
    wrote_to_deleted: Callable[[Any], bool],
) -> list[str]:
    problems: list[str] = []
    bot = sandbox.user_id(BOT_LOGIN)
    by_marker: dict[str, list[int]] = {}
    for tid in tickets:
        for article in articles[tid]:
            marker = _last_marker(article["body"])
            if marker is not None and article["created_by_id"] == bot:
                by_marker.setdefault(marker, []).append(article["id"])
    recorded = {e.marker.value: e for e in effects}
    for marker, ids in sorted(by_marker.items()):
        if len(ids) > 1:
            problems.append(f"inv 2: marker {marker} is carried by {len(ids)} articles {ids}")
        effect = recorded.get(marker)
        if effect is None:
            problems.append(
                f"inv 4: articles {ids} carry marker {marker} but no effect has it (lost intent)"
            )
        elif (
            effect.state is EffectState.DONE
            and effect.kind in MARKED_KINDS
            and effect.remote_id != str(ids[0])
            and not (effect.kind in UNNAMED_OK and effect.remote_id is None)
        ):
            problems.append(
                f"inv 4: effect {effect.id} {effect.kind} is done with remote id "
                f"{effect.remote_id}, but its marker is in article {ids[0]}"
            )
    for effect in effects:
        if effect.state is not EffectState.DONE or wrote_to_deleted(effect):
            continue
        if effect.kind == CREATE_ESCALATION:
            ticket_id = int(str(effect.remote_id).split("#", 1)[0])
            ticket = tickets.get(ticket_id)
            if ticket is None or ticket.get(ESCALATION_KEY_FIELD) != effect.key:
                problems.append(
                    f"inv 4: effect {effect.id} created ticket {effect.remote_id}, which does "
                    f"not carry escalation key {effect.key!r}"
                )
        elif effect.kind in MARKED_KINDS and effect.marker.value not in by_marker:
            problems.append(
                f"inv 4: effect {effect.id} {effect.kind} {effect.key} is done but no "
                f"article carries its marker {effect.marker}"
            )
    return problems


def _cursors(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT stream, value, signpost FROM sync_cursor").fetchall()
    finally:
        conn.close()
    return _past_signposts(rows)


def _postgres_store(url: str) -> Store:
    from escalations.store.postgres import PostgresStore  # psycopg only when asked for

    return PostgresStore(url, SystemClock())


def _postgres_cursors(store: Store) -> list[str]:
    from escalations.store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    rows = store._read("SELECT stream, value, signpost FROM sync_cursor").fetchall()
    return _past_signposts([(r["stream"], r["value"], r["signpost"]) for r in rows])


def _past_signposts(rows: list[tuple[Any, Any, Any]]) -> list[str]:
    return [
        f"inv 5: cursor {stream} at {value} is past its signpost {signpost}"
        for stream, value, signpost in rows
        if value > signpost  # one fixed-width UTC format (or timestamps): they compare as times
    ]
