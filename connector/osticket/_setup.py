"""What an admin sets up in osTicket, read through the read-only account: help topics with
their forms, departments, teams, the custom form fields, the escalation-api plugin's registry
rows and the account's own privileges. ``escalations provision`` and ``check --live`` compare
it with the mappings (``escalations.bindings.osticket.setup_check``); nothing here writes.

Every statement is a ``SELECT`` through :class:`ReadOnlyDatabase`; the privileges come from
``information_schema``, which shows an account its own grants.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from connector.osticket._db import ReadOnlyDatabase
from connector.osticket._plugin import INSTALL_PATH, INSTANCE_ENABLED

TOPIC_ACTIVE = 0x2
"""``ost_help_topic.flags``: the topic is active."""
FIELD_ENABLED = 0x1
"""``ost_form_field.flags``: the field is enabled."""
FIELD_AGENT_VIEW_EDIT = 0x1000 | 0x2000
"""``ost_form_field.flags``: agents see it and may edit it."""
FORM_DELETED = 0x2
"""``ost_form.flags``: the form was deleted (kept for the tickets that used it)."""

READ_TABLES = (
    "ticket",
    "ticket_status",
    "department",
    "team",
    "help_topic",
    "help_topic_form",
    "user",
    "user_email",
    "staff",
    "thread",
    "thread_entry",
    "thread_entry_email",
    "thread_event",
    "form",
    "form_field",
    "form_entry",
    "form_entry_values",
    "attachment",
    "file",
    "file_chunk",
    "plugin",
    "plugin_instance",
)
"""The tables the adapter and these checks read (without the prefix)."""

WRITE_PRIVILEGES = frozenset(
    {
        "INSERT",
        "UPDATE",
        "DELETE",
        "CREATE",
        "DROP",
        "ALTER",
        "INDEX",
        "GRANT",
        "ALL PRIVILEGES",
        "CREATE TEMPORARY TABLES",
        "LOCK TABLES",
        "EXECUTE",
        "CREATE VIEW",
        "CREATE ROUTINE",
        "ALTER ROUTINE",
        "EVENT",
        "TRIGGER",
        "DELETE HISTORY",
        "SUPER",
        "FILE",
    }
)
"""Privileges that would let the account change something (the worker needs ``SELECT``)."""


@dataclass(frozen=True)
class Topic:
    id: int
    name: str
    active: bool
    department_id: int
    team_id: int
    form_ids: tuple[int, ...] | None
    """The forms the topic attaches; ``None``: not readable (no ``SELECT`` on its table)."""


@dataclass(frozen=True)
class FormField:
    form_id: int
    form_type: str
    """``T``: the Ticket Details form; ``G``: a custom form a help topic attaches."""
    form_title: str
    name: str
    label: str
    type: str
    enabled: bool
    agents_edit: bool
    """Agents see the field and may edit it."""
    configuration: dict[str, Any]


@dataclass(frozen=True)
class PluginRegistry:
    installed: bool
    enabled: bool
    instance_enabled: bool


@dataclass(frozen=True)
class Grants:
    """The account's privileges: ``database`` (schema-wide) and ``tables`` (table → set)."""

    account: str
    """``'user'@'host'`` as a ``GRANT`` names it."""
    database: str
    global_privileges: frozenset[str]
    schema_privileges: frozenset[str]
    table_privileges: dict[str, frozenset[str]]

    def can_select(self, table: str) -> bool:
        return (
            "SELECT" in self.global_privileges | self.schema_privileges
            or "SELECT" in self.table_privileges.get(table, frozenset())
        )

    def writes(self) -> frozenset[str]:
        held = self.global_privileges | self.schema_privileges
        for privileges in self.table_privileges.values():
            held |= privileges
        return held & WRITE_PRIVILEGES


@dataclass(frozen=True)
class Setup:
    topics: dict[str, Topic]
    departments: dict[int, str]
    teams: dict[int, str]
    fields: tuple[FormField, ...]
    plugin: PluginRegistry


_GRANTEE = (
    "CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', "
    "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')"
)


def read_grants(db: ReadOnlyDatabase) -> Grants:
    """The account's own privileges on its database (``information_schema``: readable by
    every account, for its own grants)."""
    database = db.config.database
    (who,) = db.select(f"SELECT {_GRANTEE} AS grantee")  # noqa: S608 - a constant
    grantee = str(who["grantee"])
    global_rows = db.select(
        "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s",
        [grantee],
    )
    schema_rows = db.select(
        "SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
        "WHERE GRANTEE = %s AND TABLE_SCHEMA = %s",
        [grantee, database],
    )
    table_rows = db.select(
        "SELECT TABLE_NAME, PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES "
        "WHERE GRANTEE = %s AND TABLE_SCHEMA = %s",
        [grantee, database],
    )
    tables: dict[str, set[str]] = {}
    for r in table_rows:
        tables.setdefault(str(r["TABLE_NAME"]), set()).add(str(r["PRIVILEGE_TYPE"]))
    return Grants(
        account=grantee,
        database=database,
        global_privileges=frozenset(str(r["PRIVILEGE_TYPE"]) for r in global_rows) - {"USAGE"},
        schema_privileges=frozenset(str(r["PRIVILEGE_TYPE"]) for r in schema_rows),
        table_privileges={t: frozenset(p) for t, p in tables.items()},
    )


def read_setup(db: ReadOnlyDatabase, grants: Grants | None = None) -> Setup:
    """Topics, departments, teams, custom fields and the plugin's registry rows: six queries.
    With ``grants``, a table the account may not read of the two only these checks read
    (``team``, ``help_topic_form``) is skipped: no teams, the topics' forms unknown (``None``);
    the grant step names the missing ``SELECT``.

    Raises:
        Misconfigured: the account lacks ``SELECT`` on another of the tables.
        TransientError: the database cannot be reached.
    """

    def readable(table: str) -> bool:
        return grants is None or grants.can_select(db.config.table_prefix + table)

    forms: dict[int, list[int]] | None = None
    if readable("help_topic_form"):
        forms = {}
        for r in db.select("SELECT topic_id, form_id FROM {t:help_topic_form} ORDER BY sort, id"):
            forms.setdefault(int(r["topic_id"]), []).append(int(r["form_id"]))
    topics = {
        str(r["topic"]): Topic(
            id=int(r["topic_id"]),
            name=str(r["topic"]),
            active=bool(int(r["flags"]) & TOPIC_ACTIVE),
            department_id=int(r["dept_id"] or 0),
            team_id=int(r["team_id"] or 0),
            form_ids=None if forms is None else tuple(forms.get(int(r["topic_id"]), ())),
        )
        for r in db.select(
            "SELECT topic_id, topic, flags, dept_id, team_id FROM {t:help_topic} ORDER BY topic_id"
        )
    }
    departments = {
        int(r["id"]): str(r["name"]) for r in db.select("SELECT id, name FROM {t:department}")
    }
    teams: dict[int, str] = {}
    if readable("team"):
        teams = {
            int(r["team_id"]): str(r["name"])
            for r in db.select("SELECT team_id, name FROM {t:team}")
        }
    fields = tuple(
        FormField(
            form_id=int(r["form_id"]),
            form_type=str(r["form_type"]),
            form_title=str(r["title"]),
            name=str(r["name"]),
            label=str(r["label"]),
            type=str(r["type"]),
            enabled=bool(int(r["flags"]) & FIELD_ENABLED),
            agents_edit=int(r["flags"]) & FIELD_AGENT_VIEW_EDIT == FIELD_AGENT_VIEW_EDIT,
            configuration=_configuration(r["configuration"]),
        )
        for r in db.select(
            "SELECT ff.form_id, f.type AS form_type, f.title, ff.name, ff.label, ff.type, "
            "ff.flags, ff.configuration FROM {t:form_field} ff "
            "JOIN {t:form} f ON f.id = ff.form_id "
            "WHERE f.type IN ('T', 'G') AND (f.flags & %s) = 0 AND ff.name <> '' "
            "ORDER BY ff.id",
            [FORM_DELETED],
        )
    )
    rows = db.select(
        "SELECT p.isactive, i.flags FROM {t:plugin} p "
        "LEFT JOIN {t:plugin_instance} i ON i.plugin_id = p.id WHERE p.install_path = %s",
        [INSTALL_PATH],
    )
    plugin = PluginRegistry(
        installed=bool(rows),
        enabled=any(int(r["isactive"]) for r in rows),
        instance_enabled=any(int(r["flags"] or 0) & INSTANCE_ENABLED for r in rows),
    )
    return Setup(topics, departments, teams, fields, plugin)


def _configuration(raw: Any) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        decoded = json.loads(raw, strict=False)  # a raw newline in a choices list
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}
