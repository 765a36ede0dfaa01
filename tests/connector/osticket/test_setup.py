"""``connector.osticket._setup`` without a server: which statements it sends for which grants
(the queries themselves run against the real osTicket in
``tests/escalations/app/test_provision_osticket.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from connector.clock import SystemClock
from connector.osticket import DatabaseConfig, ReadOnlyDatabase
from connector.osticket._setup import READ_TABLES, Grants, read_setup

ROWS: dict[str, list[dict[str, Any]]] = {
    "help_topic_form": [{"topic_id": 12, "form_id": 7}],
    "help_topic": [{"topic_id": 12, "topic": "Escalation", "flags": 2, "dept_id": 3, "team_id": 1}],
    "department": [{"id": 3, "name": "Maintenance"}],
    "team": [{"team_id": 1, "name": "Level I Support"}],
    "form_field": [],
    "plugin": [],
}


class Recording(ReadOnlyDatabase):
    def __init__(self) -> None:
        super().__init__(DatabaseConfig("127.0.0.1", 3306, "osticket", "ro", ""), SystemClock())
        self.tables: list[str] = []

    def select(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        table = sql.split("FROM {t:", 1)[1].split("}", 1)[0]
        self.tables.append(table)
        return ROWS[table]


def _grants(tables: tuple[str, ...]) -> Grants:
    return Grants(
        "'ro'@'h'", "osticket", frozenset(), frozenset(),
        {f"ost_{t}": frozenset({"SELECT"}) for t in tables},
    )  # fmt: skip


def test_with_every_select_it_reads_the_topics_forms_and_teams() -> None:
    db = Recording()
    setup = read_setup(db, _grants(READ_TABLES))
    tables = ["help_topic_form", "help_topic", "department", "team", "form_field", "plugin"]
    assert db.tables == tables
    assert setup.topics["Escalation"].form_ids == (7,)
    assert setup.teams == {1: "Level I Support"}


@pytest.mark.parametrize("lacking", ["team", "help_topic_form"])
def test_a_table_only_the_checks_read_is_skipped_without_its_select(lacking: str) -> None:
    """An account granted the older, narrower list still gets its checklist (whose grant step
    names the missing SELECT), not a refusal."""
    db = Recording()
    setup = read_setup(db, _grants(tuple(t for t in READ_TABLES if t != lacking)))
    assert lacking not in db.tables
    if lacking == "team":
        assert setup.teams == {}
    else:
        assert setup.topics["Escalation"].form_ids is None


def test_a_choices_list_with_raw_newlines_is_still_read() -> None:
    """A configuration written with raw newlines in the choices (by hand, or an older
    osTicket) is still JSON to osTicket's PHP; the checks read its keys too."""
    db = Recording()
    config = '{"choices": "residential:R\nreseller:R"}'
    field = {"form_id": 2, "form_type": "T", "title": "Ticket Details", "name": "segment"}
    field |= {"label": "Segment", "type": "choices", "flags": 0x3001, "configuration": config}
    ROWS["form_field"] = [field]
    try:
        (read,) = read_setup(db, _grants(READ_TABLES)).fields
    finally:
        ROWS["form_field"] = []
    assert read.configuration == {"choices": "residential:R\nreseller:R"}
    assert read.agents_edit
