"""What ``mappings/osticket.toml`` needs in osTicket, compared with what is there: one
``Step`` per object, shared by ``escalations check --live`` (its problems) and ``escalations
provision`` (each step's line: ``ok``, or the admin-panel step that makes it so).

osTicket's API and the escalation-api plugin cannot create help topics, forms, fields,
statuses, agents, the plugin itself or API keys, and the worker never writes SQL: so on
osTicket ``provision`` is a checklist an admin works through, read through the read-only
database account (``connector.osticket._setup``) and, with the plugin, its ping.

The mappings name no department or team: the escalation help topic routes the ticket, and its
department and team are shown, not compared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connector.base import Capability
from connector.errors import AuthError, HelpdeskError, Misconfigured
from connector.osticket import OsTicketAdapter
from connector.osticket._setup import (
    READ_TABLES,
    FormField,
    Grants,
    Setup,
    read_grants,
    read_setup,
)
from escalations.bindings.osticket.field_map import OsTicketFieldMap
from escalations.mappings import Mappings

NEEDED_BY: dict[Capability, str] = {
    Capability.ADD_NOTE: (
        "internal notes (the original's 'escalated' note, level changes, reminders, the carrier "
        "hand-over, parking and closing notes)"
    ),
    Capability.UPDATE_TICKET: (
        "status and field writes (consuming the flag, a level's owner, parking, closing, the RFO "
        "gate's reopen)"
    ),
    Capability.LINKS: "the link from the escalation ticket to the original",
}
"""What the process uses that an osTicket installation may lack, and what needs it."""

STATUS_STATES = {
    "open": "open",
    "parked": "open",
    "closed": "closed",
    "confirmed": "closed",
    "not_satisfied": "open",
}
"""The osTicket state each ``[statuses]`` status must have: a parked ticket stays in the open
queues, an agent who records "confirmed" closes the ticket."""

TOPIC_FORM = "topic"
ANY_FORM = "any"


@dataclass(frozen=True)
class FieldSpec:
    label: str
    types: tuple[str, ...]
    """osTicket field types accepted; the first is the one to create."""
    where: str
    """``topic``: on a form of the escalation help topic (the create fills it, agents edit it
    on the escalation ticket); ``any``: the Ticket Details form or any topic's form."""
    form: str = ""
    """Where to add it, when not the default for ``where``."""


FIELDS: dict[str, FieldSpec] = {
    "escalation_key": FieldSpec("Escalation key", ("text",), TOPIC_FORM),
    "level": FieldSpec("Escalation level", ("text",), TOPIC_FORM),
    "original_ticket": FieldSpec("Original ticket", ("text",), TOPIC_FORM),
    "route_failed": FieldSpec("Carrier route failed", ("bool",), TOPIC_FORM),
    "rfo": FieldSpec(
        "Reason for outage",
        ("text", "memo"),
        ANY_FORM,
        "the escalation form (best: agents fill it on the escalation ticket)",
    ),
    "reason": FieldSpec("Escalation reason", ("choices", "text"), ANY_FORM),
    "segment": FieldSpec("Customer segment", ("choices", "text"), ANY_FORM),
    "callback_at": FieldSpec("Callback at (ISO-8601)", ("text",), ANY_FORM),
}
"""Each ``[fields]`` key: its label to type, the field types that work, and its form."""

TYPE_NAMES = {
    "text": "Short Answer",
    "memo": "Long Answer",
    "bool": "Checkbox",
    "choices": "Choices",
    "datetime": "Date and Time",
}
"""osTicket's names, in the form editor's Type column, for its field types."""

STATE_NAMES = {"open": "Open", "closed": "Closed"}


@dataclass(frozen=True)
class Step:
    """One object the process needs. ``problems``: ``check --live``'s lines (empty: as
    wanted); ``why``: the short difference ``provision`` prints; ``fix``: the admin step.
    ``unverified``: cannot be checked from here (not a ``check --live`` problem)."""

    what: str
    problems: tuple[str, ...] = ()
    why: str = ""
    fix: str = ""
    unverified: bool = False

    @property
    def done(self) -> bool:
        return not self.problems and not self.unverified

    def line(self) -> str:
        if self.done:
            return f"ok    {self.what}"
        why = f"{self.why}; " if self.why else ""
        return f"todo  {self.what}: {why}{self.fix}"


@dataclass(frozen=True)
class Found:
    """What osTicket has, read once (``read``)."""

    grants: Grants
    setup: Setup
    states: dict[str, str]
    """Status name → state."""
    agents: dict[str, tuple[bool, bool]]
    """``[people]`` reference → (an agent, active)."""


def read(adapter: OsTicketAdapter, fieldmap: OsTicketFieldMap) -> Found:
    """Raises ``AuthError`` / ``HelpdeskError`` from the database."""
    grants = read_grants(adapter.db)
    setup = read_setup(adapter.db, grants)
    states = {s.name: s.type for s in adapter.list_states()}
    agents: dict[str, tuple[bool, bool]] = {}
    for ref in sorted(set(fieldmap.people.values())):
        user = adapter.find_user(ref)
        agents[ref] = (user is not None and user.is_agent, user is not None and user.active)
    return Found(grants, setup, states, agents)


def plan_for(
    adapter: OsTicketAdapter, mappings: Mappings, *, worker_ip: str | None = None
) -> list[Step]:
    """Read what osTicket has through the adapter, then ``plan``. Raises ``AuthError`` /
    ``HelpdeskError`` when osTicket's database cannot be read."""
    fieldmap = mappings.helpdesk
    assert isinstance(fieldmap, OsTicketFieldMap)
    return plan(
        mappings,
        read(adapter, fieldmap),
        capabilities=adapter.capabilities,
        ping=adapter.plugin.ping,
        table_prefix=adapter.db.config.table_prefix,
        worker_ip=worker_ip,
    )


def plan(
    mappings: Mappings,
    found: Found,
    *,
    capabilities: frozenset[Capability],
    ping: Callable[[], object],
    table_prefix: str = "ost_",
    worker_ip: str | None = None,
) -> list[Step]:
    """Every step, in the order an admin takes them (``ping`` is called only when the plugin's
    capabilities are there)."""
    fieldmap = mappings.helpdesk
    assert isinstance(fieldmap, OsTicketFieldMap)
    where = str(mappings.helpdesk_file)
    choices = {
        "reason": tuple(r.key for r in mappings.profile.reasons),
        "segment": tuple(mappings.profile.segments),
    }
    return [
        grant_step(found.grants, table_prefix),
        *status_steps(fieldmap, found.states, where),
        topic_step(fieldmap, found.setup, where),
        *field_steps(fieldmap, found.setup, where, choices),
        *people_steps(fieldmap, found.agents, where),
        plugin_step(capabilities, found.setup),
        key_step(capabilities, ping, worker_ip, _topic_department(fieldmap, found.setup)),
    ]


def _topic_department(fieldmap: OsTicketFieldMap, setup: Setup) -> tuple[int, str] | None:
    """The escalation help topic's department (id, name), where the bot agent writes."""
    topic = setup.topics.get(fieldmap.topics.escalation)
    if topic is None or topic.department_id not in setup.departments:
        return None
    return topic.department_id, setup.departments[topic.department_id]


def grant_step(grants: Grants, prefix: str) -> Step:
    db = f"`{grants.database}`"
    what = f"read-only database account {grants.account} (SELECT on {grants.database} only)"
    lacking = [t for t in (prefix + t for t in READ_TABLES) if not grants.can_select(t)]
    writes = sorted(grants.writes())
    problems: list[str] = []
    fixes: list[str] = []
    if writes:
        problems.append(
            f"the database account {grants.account} holds {', '.join(writes)} (the worker "
            "needs SELECT only: a session of its is read-only, the account should be too)"
        )
        fixes.append(f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {grants.account};")
    if lacking or writes:
        if lacking:
            problems.append(
                f"the database account {grants.account} lacks SELECT on "
                f"{', '.join(f'{grants.database}.{t}' for t in lacking)}"
            )
        fixes.append(f"GRANT SELECT ON {db}.* TO {grants.account};")
    return Step(
        what,
        tuple(problems),
        why="; ".join(p.removeprefix(f"the database account {grants.account} ") for p in problems),
        fix="on the database server, as its admin: " + " ".join(fixes),
    )


def status_steps(fieldmap: OsTicketFieldMap, states: dict[str, str], where: str) -> list[Step]:
    wanted = [("flag.status", fieldmap.flag.status, "open")]
    for key in type(fieldmap.statuses).model_fields:
        name = getattr(fieldmap.statuses, key)
        if name is not None:
            wanted.append((f"statuses.{key}", name, STATUS_STATES[key]))
    steps = []
    for key, name, state in wanted:
        what = f"ticket status '{name}', state {STATE_NAMES[state]} ({key})"
        have = states.get(name)
        if have is None:
            problem = f"{where}: {key}: status '{name}' not found"
            why = "not found"
            fix = (
                "Admin Panel → Manage → Lists → Ticket Status → Add New Item: "
                f"Value '{name}', then its Properties: State '{STATE_NAMES[state]}'"
            )
        elif have != state:
            if key == "flag.status":
                problem = (
                    f"{where}: flag.status: status '{name}' is of state '{have}' (expected an "
                    "open-state status, so flagging keeps the ticket open)"
                )
            else:
                problem = (
                    f"{where}: {key}: status '{name}' is of state '{have}' (expected '{state}')"
                )
            why = f"its state is '{have}'"
            fix = (
                f"Admin Panel → Manage → Lists → Ticket Status → '{name}' → Properties: State "
                f"'{STATE_NAMES[state]}' (or name another status in {where} [{key.split('.')[0]}])"
            )
        else:
            steps.append(Step(what))
            continue
        steps.append(Step(what, (problem,), why, fix))
    return steps


def topic_step(fieldmap: OsTicketFieldMap, setup: Setup, where: str) -> Step:
    name = fieldmap.topics.escalation
    topic = setup.topics.get(name)
    create = (
        f"Admin Panel → Manage → Help Topics → Add New Help Topic: Topic '{name}', Status "
        "Active, Department: the escalation department (its team or agent auto-assignment and "
        "SLA are the escalation ticket's), Auto-response: disable new ticket auto-response; "
        "tab Forms: add the escalation form (the fields below)"
    )
    if topic is None:
        return Step(
            f"help topic '{name}' (topics.escalation)",
            (f"{where}: topics.escalation: help topic '{name}' not found",),
            "not found",
            create,
        )
    department = setup.departments.get(topic.department_id)
    team = setup.teams.get(topic.team_id)
    routes = f"department '{department}'" if department else "no department"
    routes += f", team '{team}'" if team else ", no team"
    what = f"help topic '{name}' (topics.escalation; {routes})"
    problems = []
    whys = []
    if not topic.active:
        problems.append(f"{where}: topics.escalation: help topic '{name}' is not active")
        whys.append("not active")
    if department is None:
        problems.append(f"{where}: topics.escalation: help topic '{name}' has no department")
        whys.append("no department")
    fix = (
        f"Admin Panel → Manage → Help Topics → '{name}': Status Active, Department: the "
        "escalation department"
    )
    return Step(what, tuple(problems), "; ".join(whys), fix if problems else "")


def _choice_keys(field: FormField) -> set[str]:
    text = str(field.configuration.get("choices") or "")
    return {line.split(":", 1)[0].strip() for line in text.splitlines() if line.strip()}


def field_steps(
    fieldmap: OsTicketFieldMap,
    setup: Setup,
    where: str,
    choices: dict[str, tuple[str, ...]],
) -> list[Step]:
    topic = setup.topics.get(fieldmap.topics.escalation)
    # the topic's forms, when known (unreadable: the grant step names the table)
    topic_forms = set(topic.form_ids) if topic is not None and topic.form_ids is not None else None
    steps = []
    for key in type(fieldmap.fields).model_fields:
        name = getattr(fieldmap.fields, key)
        if name is None:
            continue
        spec = FIELDS[key]
        on_topic = spec.where == TOPIC_FORM
        form = spec.form or (
            f"the escalation form (a custom form the help topic '{fieldmap.topics.escalation}' "
            "attaches)"
            if on_topic
            else "the Ticket Details form (or the form of the topic the original ticket has)"
        )
        kind = TYPE_NAMES[spec.types[0]]
        what = f"form field '{name}', {' or '.join(TYPE_NAMES[t] for t in spec.types)}"
        what += f", on {'the escalation topic' if on_topic else 'a ticket'}'s form (fields.{key})"
        candidates = [f for f in setup.fields if f.name == name]
        if not candidates:
            choice = ""
            if spec.types[0] == "choices" and key in choices:
                choice = f", choices (one a line, key:label) {', '.join(choices[key])}"
            steps.append(
                Step(
                    what,
                    (f"{where}: fields.{key}: no form field with variable name '{name}'",),
                    "not found",
                    f"Admin Panel → Manage → Forms → {form} → Fields: add Label '{spec.label}', "
                    f"Type '{kind}', Variable '{name}'{choice}, Visibility 'Internal, Optional' "
                    "(agents see and edit it)",
                )
            )
            continue
        if on_topic and topic_forms is not None:
            placed = [f for f in candidates if f.form_id in topic_forms]
        else:
            placed = candidates
        field = (placed or candidates)[0]
        problems: list[str] = []
        whys: list[str] = []
        fixes: list[str] = []
        edit = f"Admin Panel → Manage → Forms → '{field.form_title}' → the field '{field.label}'"
        if not placed:
            problems.append(
                f"{where}: fields.{key}: form field '{name}' is on the form "
                f"'{field.form_title}', which the help topic '{fieldmap.topics.escalation}' "
                "does not attach"
            )
            whys.append(f"on form '{field.form_title}', not attached to the topic")
            fixes.append(
                f"Admin Panel → Manage → Help Topics → '{fieldmap.topics.escalation}' → Forms: "
                f"add '{field.form_title}'"
            )
        if field.type not in spec.types:
            expected = " or ".join(f"'{t}'" for t in spec.types)
            problems.append(
                f"{where}: fields.{key}: form field '{name}' is of type '{field.type}' "
                f"(expected {expected})"
            )
            whys.append(f"of type '{TYPE_NAMES.get(field.type, field.type)}'")
            fixes.append(f"{edit}: Type '{kind}' (or delete it and add it again)")
        if not field.enabled:
            problems.append(f"{where}: fields.{key}: form field '{name}' is disabled")
            whys.append("disabled")
            fixes.append(f"{edit}: enable it")
        if not field.agents_edit:
            problems.append(
                f"{where}: fields.{key}: form field '{name}' is not visible and editable by agents"
            )
            whys.append("agents cannot see or edit it")
            fixes.append(f"{edit} → Config → Settings: Visible and Editable for agents")
        if field.type == "choices" and key in choices:
            missing = [c for c in choices[key] if c not in _choice_keys(field)]
            if missing:
                problems.append(
                    f"{where}: fields.{key}: form field '{name}' has no choice "
                    f"{', '.join(map(repr, missing))} (the keys of process.toml)"
                )
                whys.append(f"no choice {', '.join(missing)}")
                fixes.append(f"{edit} → Config: add the choices {', '.join(missing)}")
        steps.append(Step(what, tuple(problems), "; ".join(whys), "; ".join(fixes)))
    return steps


def people_steps(
    fieldmap: OsTicketFieldMap, agents: dict[str, tuple[bool, bool]], where: str
) -> list[Step]:
    steps = []
    for role, ref in sorted(fieldmap.people.items()):
        what = f"active agent '{ref}' (people.{role})"
        is_agent, active = agents.get(ref, (False, False))
        if not is_agent:
            steps.append(
                Step(
                    what,
                    (f"{where}: people.{role}: agent '{ref}' not found",),
                    "not found",
                    f"Admin Panel → Agents → Add New Agent: {_ref_field(ref)} '{ref}', a "
                    "primary department and access to the escalation topic's department, "
                    "Status Active",
                )
            )
        elif not active:
            steps.append(
                Step(
                    what,
                    (f"{where}: people.{role}: agent '{ref}' is not active",),
                    "not active",
                    f"Admin Panel → Agents → '{ref}': Status Active",
                )
            )
        else:
            steps.append(Step(what))
    return steps


def _ref_field(ref: str) -> str:
    return "Email" if "@" in ref else "Username"


def missing_capabilities(capabilities: frozenset[Capability]) -> list[str]:
    return [
        f"capability {cap.value} missing: needed for {needed}; core osTicket cannot do this "
        "and the escalation-api plugin is not enabled in this osTicket (install it from "
        "plugins/osticket/escalation-api, docs/osticket.md)"
        for cap, needed in NEEDED_BY.items()
        if cap not in capabilities
    ]


def plugin_step(capabilities: frozenset[Capability], setup: Setup) -> Step:
    what = "escalation-api plugin installed, enabled, with an active instance (add_note, "
    what += "update_ticket, links)"
    problems = missing_capabilities(capabilities)
    if not problems:
        return Step(what)
    todo = [
        "copy plugins/osticket/escalation-api to include/plugins/escalation-api on the osTicket "
        "server",
        "Admin Panel → Manage → Plugins → Add New Plugin → 'Escalation API' → Install",
        "tick it → More → Enable",
        "open it → Instances → Add New Instance: a name, Status Active, Bot agent: the "
        "username of the active agent the worker acts as, Worker API key: the key in "
        "ESCALATIONS_HELPDESK_TOKEN (the only key the plugin accepts)",
    ]
    plugin = setup.plugin
    start = 3 if plugin.enabled else 2 if plugin.installed else 0
    why = (
        "no enabled instance"
        if plugin.enabled
        else "installed, not enabled"
        if plugin.installed
        else "not installed"
    )
    return Step(what, tuple(problems), why, "; ".join(todo[start:]) + " (docs/osticket.md)")


def key_step(
    capabilities: frozenset[Capability],
    ping: Callable[[], object],
    worker_ip: str | None,
    department: tuple[int, str] | None = None,
) -> Step:
    """The API key from this address (able to create tickets, the one the plugin instance
    names) and the bot agent (active, with assign/edit/close/link in the escalation topic's
    ``department``): provable with the plugin only."""
    ip = worker_ip or "<this worker's address>"
    key = (
        f"Admin Panel → Manage → API Keys → Add New API Key (or the worker's key): Status "
        f"Active, IP Address '{ip}' (as osTicket sees this worker; ::1 is not 127.0.0.1), Can "
        "Create Tickets on; the key in ESCALATIONS_HELPDESK_TOKEN"
    )
    what = f"API key accepted from this worker ({ip}), able to create tickets, and the plugin's"
    what += " bot agent active (GET /api/escalation/ping)"
    if Capability.ADD_NOTE not in capabilities:
        return Step(
            what,
            why="not verifiable before the plugin is enabled (core osTicket has no harmless call)",
            fix=key,
            unverified=True,
        )
    problems = plugin_answers(ping, department)
    if not problems:
        return Step(what)
    return Step(
        what,
        tuple(problems),
        problems[0].removeprefix("the escalation-api plugin "),
        f"{key}; Admin Panel → Manage → Plugins → Escalation API → Instances: Status Active, Bot "
        "agent an active agent, Worker API key the key in ESCALATIONS_HELPDESK_TOKEN; Admin "
        "Panel → Agents → the bot agent → Access: a role with Assign, Edit, Close and Link in "
        "the escalation topic's department",
    )


BOT_PERMISSIONS = ("assign", "edit", "close", "link")
"""What the bot agent's role must grant in the escalation topic's department."""


def plugin_answers(
    ping: Callable[[], object], department: tuple[int, str] | None = None
) -> list[str]:
    """One request that proves the key (its IP binding, that it is the plugin's, that it can
    create tickets) and the bot agent (active, its permissions in ``department``): core
    osTicket has no harmless call that would."""
    try:
        answer = ping()
    except Misconfigured as exc:
        return [f"the escalation-api plugin instance is set up wrong: {exc.message}"]
    except AuthError as exc:
        return [
            f"the escalation-api plugin refused the API key (is it bound to this worker's "
            f"address, and the plugin instance's Worker API key?): {exc.message}"
        ]
    except HelpdeskError as exc:
        return [f"the escalation-api plugin does not answer as expected: {exc.message}"]
    if not isinstance(answer, dict):
        return []
    return _key_problems(answer) + _bot_problems(answer, department)


def _key_problems(answer: dict[str, Any]) -> list[str]:
    if answer.get("can_create_tickets") is False:
        return [
            "the escalation-api plugin reports that the API key cannot create tickets (Can "
            "Create Tickets is off): every escalation ticket's create would be refused"
        ]
    return []


def _bot_problems(answer: dict[str, Any], department: tuple[int, str] | None) -> list[str]:
    granted = answer.get("bot_departments")
    if department is None or not isinstance(granted, dict):
        return []
    dept_id, name = department
    bot = answer.get("bot_agent", "the bot agent")
    have = granted.get(str(dept_id))
    if have is None:
        return [
            f"the escalation-api plugin's bot agent '{bot}' has no access to the department "
            f"'{name}' of the escalation help topic"
        ]
    lacking = [p for p in BOT_PERMISSIONS if p not in have]
    if lacking:
        return [
            f"the escalation-api plugin's bot agent '{bot}' lacks {', '.join(lacking)} in the "
            f"department '{name}' of the escalation help topic (its role there)"
        ]
    return []
