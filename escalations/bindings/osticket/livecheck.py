"""``escalations check --live`` for osTicket: does osTicket have everything
``mappings/osticket.toml`` names, and which capabilities the escalation process uses does this
installation lack? One line per problem; a missing capability names what it leaves undone."""

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
    Capability.SUBSCRIBE: "subscribing a level's executives",
    Capability.HISTORY: "naming who flagged or set a level (the ticket's owner is named instead)",
}
"""What the process uses that an osTicket installation may lack, and what needs it."""


def missing_capabilities(adapter: HelpdeskAdapter) -> list[str]:
    return [
        f"capability {cap.value} missing: needed for {needed}; core osTicket cannot do this "
        "and the escalation-api plugin that would is not built yet (docs/osticket.md)"
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
    for key in ("open", "parked", "closed"):
        name = getattr(fieldmap.statuses, key)
        if name not in states:
            problems.append(f"{where}: statuses.{key}: status '{name}' not found")
    if fieldmap.topics.escalation not in topics:
        problems.append(
            f"{where}: topics.escalation: help topic '{fieldmap.topics.escalation}' not found"
        )
    for key in type(fieldmap.fields).model_fields:
        name = getattr(fieldmap.fields, key)
        if name not in fields:
            problems.append(f"{where}: fields.{key}: no form field with variable name '{name}'")
    for role, ref in sorted(fieldmap.people.items()):
        user = adapter.find_user(ref)
        if user is None or not user.is_agent:
            problems.append(f"{where}: people.{role}: agent '{ref}' not found")
        elif not user.active:
            problems.append(f"{where}: people.{role}: agent '{ref}' is not active")
    return problems + missing_capabilities(adapter)
