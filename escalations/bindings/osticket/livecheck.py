"""``escalations check --live`` for osTicket: does osTicket have everything
``mappings/osticket.toml`` names, and which capabilities the escalation process uses does this
installation lack? One line per problem; a missing capability names what it leaves undone.

The capabilities listed are the ones the escalation-api plugin adds (``add_note``,
``update_ticket``, ``links``): with the plugin enabled none is listed, and the plugin is asked
(``/api/escalation/ping``) whether it accepts the API key from this address and has an active
bot agent. What osTicket cannot do even with the plugin (subscribing agents, tags, the history
as events) is not listed: the process does without it (a note names people, the owner is
credited), see docs/osticket.md."""

from __future__ import annotations

from connector.base import Capability, HelpdeskAdapter
from connector.errors import AuthError, HelpdeskError
from connector.osticket import OsTicketAdapter
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


def missing_capabilities(adapter: HelpdeskAdapter) -> list[str]:
    return [
        f"capability {cap.value} missing: needed for {needed}; core osTicket cannot do this "
        "and the escalation-api plugin is not enabled in this osTicket (install it from "
        "plugins/osticket/escalation-api, docs/osticket.md)"
        for cap, needed in NEEDED_BY.items()
        if cap not in adapter.capabilities
    ]


def live_check(adapter: HelpdeskAdapter, mappings: Mappings) -> list[str]:
    fieldmap = mappings.helpdesk
    assert isinstance(fieldmap, OsTicketFieldMap)
    where = str(mappings.helpdesk_file)
    problems: list[str] = []
    try:
        states = {s.name: s for s in adapter.list_states()}
        fields = {f.name for f in adapter.list_fields() or []}
        topics = adapter.list_help_topics() if isinstance(adapter, OsTicketAdapter) else {}
    except AuthError as exc:
        return [f"the osTicket database refused the account: {exc.message}"]
    except HelpdeskError as exc:
        return [f"the osTicket database cannot be read: {exc.message}"]

    flag = states.get(fieldmap.flag.status)
    if flag is None:
        problems.append(f"{where}: flag.status: status '{fieldmap.flag.status}' not found")
    elif flag.type != "open":
        problems.append(
            f"{where}: flag.status: status '{flag.name}' is of state '{flag.type}' (expected an "
            "open-state status, so flagging keeps the ticket open)"
        )
    for key in type(fieldmap.statuses).model_fields:
        name = getattr(fieldmap.statuses, key)
        if name is None:
            continue
        status = states.get(name)
        if status is None:
            problems.append(f"{where}: statuses.{key}: status '{name}' not found")
        elif status.type != STATUS_STATES[key]:
            problems.append(
                f"{where}: statuses.{key}: status '{name}' is of state '{status.type}' "
                f"(expected '{STATUS_STATES[key]}')"
            )
    if fieldmap.topics.escalation not in topics:
        problems.append(
            f"{where}: topics.escalation: help topic '{fieldmap.topics.escalation}' not found"
        )
    for key in type(fieldmap.fields).model_fields:
        name = getattr(fieldmap.fields, key)
        if name is not None and name not in fields:
            problems.append(f"{where}: fields.{key}: no form field with variable name '{name}'")
    for role, ref in sorted(fieldmap.people.items()):
        user = adapter.find_user(ref)
        if user is None or not user.is_agent:
            problems.append(f"{where}: people.{role}: agent '{ref}' not found")
        elif not user.active:
            problems.append(f"{where}: people.{role}: agent '{ref}' is not active")
    return problems + missing_capabilities(adapter) + _plugin_answers(adapter)


def _plugin_answers(adapter: HelpdeskAdapter) -> list[str]:
    """With the plugin enabled: one request that proves the key, its IP binding and the bot
    agent (core osTicket has no harmless call that would)."""
    if not isinstance(adapter, OsTicketAdapter) or Capability.ADD_NOTE not in adapter.capabilities:
        return []
    try:
        adapter.plugin.ping()
    except AuthError as exc:
        return [
            f"the escalation-api plugin refused the API key (is it bound to this worker's "
            f"address?): {exc.message}"
        ]
    except HelpdeskError as exc:
        return [f"the escalation-api plugin does not answer as expected: {exc.message}"]
    return []
