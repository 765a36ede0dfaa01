"""Forward-only migrations, proven on stores made by earlier schemas (issue 9: "a test
upgrading a store made by each earlier schema"), and pending effects written by the code
before the reshape still load and run after it."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from connector.base import HelpdeskAdapter
from escalations.clock import FakeClock
from escalations.effects import Registry
from escalations.effects.helpdesk import helpdesk_kinds
from escalations.models import EffectState, State
from escalations.store import SqliteStore
from escalations.store import sqlite as sqlite_module
from escalations.store.sqlite import load_migrations

FIXTURE = Path(__file__).parents[1] / "fixtures" / "stores" / "schema3_pending.sql"
T = "2026-12-01T09:00:00.000000Z"


def _old_store(path: Path, clock: FakeClock, version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store migrated only to ``version``, with a row of each thing every schema had."""
    with monkeypatch.context() as m:
        m.setattr(sqlite_module, "load_migrations", lambda: load_migrations()[:version])
        SqliteStore(path, clock).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO escalation (key, original_ticket_id, escalation_ticket_id,"
            " escalation_ticket_number, customer_id, segment, level, reason, state, flagged_at,"
            " opened_at, updated_at) VALUES ('zammad:ticket:1:1', 1, 5, '31005', 11,"
            " 'residential', 2, 'outage_beyond_sla', 'open', ?, ?, ?)",
            (T, T, T),
        )
        conn.execute(
            "INSERT INTO effect (kind, key, marker, payload, payload_sha256, escalation_id,"
            " state, attempts, not_before, created_at, updated_at) VALUES ('note',"
            " 'level-note:zammad:ticket:1:1:1', 'hde1-690af39b7b32b9dd',"
            ' \'{"html":"<p>x</p>","subject":"Level 2","ticket_id":5}\', ?, 1,'
            " 'in_flight', 1, ?, ?, ?)",
            ("0" * 64, T, T, T),
        )
        if version < 4:  # schema 4 replaced seen_ticket by seen_version
            conn.execute("INSERT INTO seen_ticket (ticket_id, updated_at) VALUES (1, ?)", (T,))
        else:
            conn.execute(
                "INSERT INTO seen_version (ticket_id, updated_at, seen_at) VALUES (1, ?, ?)",
                (T, T),
            )
        conn.execute(
            "INSERT INTO duty (escalation_id, kind, slot, due_at) VALUES (1, 'call', 'am', ?)",
            (T,),
        )
        conn.execute(
            "INSERT INTO carrier_contact (escalation_id, source_article_id, carrier, stage,"
            " missing) VALUES (1, 10, 'BT', 'agent', '[\"location\"]')"
        )
    conn.close()


@pytest.mark.parametrize("version", range(1, len(load_migrations())))
def test_a_store_made_by_each_earlier_schema_upgrades_with_its_data(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, version: int
) -> None:
    path = tmp_path / "old.sqlite3"
    _old_store(path, clock, version, monkeypatch)
    store = SqliteStore(path, clock)
    assert store.schema_version == len(load_migrations())
    (esc,) = store.escalations_in(State.OPEN)
    assert (esc.key, esc.escalation_ticket_number, esc.original_ticket_number) == (
        "zammad:ticket:1:1", "31005", None,
    )  # fmt: skip
    (effect,) = store.effects()
    assert (effect.state, effect.payload_version, effect.deferrals, effect.claimed_by) == (
        EffectState.IN_FLIGHT, 1, 0, None,
    )  # fmt: skip
    assert store.ticket_seen(1, esc.updated_at)  # seen_ticket became seen_version
    (contact,) = store.carrier_contacts(1)
    assert (contact.carrier, contact.missing, contact.problems) == ("BT", ("location",), ())
    (duty,) = store.duties(1)  # schema 5 added the window and the reminder/miss records
    assert (duty.slot, duty.opens_at, duty.reason, duty.missed_at) == ("am", None, "", None)
    store.close()


def _registry() -> Registry:
    # loading a payload needs no helpdesk; the kinds are built as the worker builds them
    nowhere = cast(HelpdeskAdapter, object())
    return Registry().add(*helpdesk_kinds(nowhere, cast(Any, None), cast(Any, None)))


def test_pending_effects_written_before_the_reshape_load_and_are_recoverable(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "schema3.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE.read_text())
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    store = SqliteStore(path, clock)
    effects = store.effects()
    kinds = {e.kind for e in effects}
    assert kinds == {"create_escalation", "note", "tags", "update_ticket", "copy_article"}
    registry = _registry()
    for effect in effects:
        kind = registry.get(effect.kind)
        assert kind is not None, effect.kind
        kind.load(effect.payload, effect.payload_version)  # raises if a payload does not load
    (in_flight,) = store.effects(EffectState.IN_FLIGHT)
    assert in_flight.claimed_by is None  # an orphan: no worker holds it
    now = in_flight.updated_at + timedelta(minutes=3)
    with store.transaction() as tx:
        taken = store.claim_next(
            tx, worker="w", now=now, after_id=in_flight.id - 1,
            lease_until=now + timedelta(minutes=15), orphaned_before=now - timedelta(minutes=2),
        )  # fmt: skip
    assert taken is not None
    assert (taken.id, taken.attempts) == (in_flight.id, in_flight.attempts + 1)
    store.close()
