"""``escalations check --live`` for osTicket: does osTicket have everything
``mappings/osticket.toml`` names, and which capabilities the escalation process uses does this
installation lack? One line per problem; a missing capability names what it leaves undone.

The comparisons are ``setup_check``'s, the same ``escalations provision`` prints as an admin's
checklist: the read-only account's privileges, the flag status and ``[statuses]`` (with their
states), the help topic (active, with a department), each ``[fields]`` variable name (its type,
and on the topic's form where the create fills it), the agents of ``[people]``, and the
capabilities the escalation-api plugin adds (``add_note``, ``update_ticket``, ``links``):
with the plugin enabled none is listed, and the plugin is asked (``/api/escalation/ping``)
whether it accepts the API key from this address and has an active bot agent. What osTicket
cannot do even with the plugin (subscribing agents, tags, the history as events) is not
listed: the process does without it (a note names people, the owner is credited), see
docs/osticket.md."""

from __future__ import annotations

from connector.base import HelpdeskAdapter
from connector.errors import AuthError, HelpdeskError
from connector.osticket import OsTicketAdapter
from escalations.bindings.osticket import setup_check
from escalations.bindings.osticket.setup_check import NEEDED_BY, STATUS_STATES
from escalations.mappings import Mappings

__all__ = ["NEEDED_BY", "STATUS_STATES", "UNREAD", "live_check", "missing_capabilities"]

UNREAD = "the osTicket database "
"""How the one line begins when osTicket's database could not be read at all (nothing was
compared, so there is no admin's step to print for it)."""


def missing_capabilities(adapter: HelpdeskAdapter) -> list[str]:
    return setup_check.missing_capabilities(adapter.capabilities)


def live_check(adapter: HelpdeskAdapter, mappings: Mappings) -> list[str]:
    """Every problem of ``setup_check.plan``, one line each (empty: all as the mappings say)."""
    assert isinstance(adapter, OsTicketAdapter)
    try:
        steps = setup_check.plan_for(adapter, mappings)
    except AuthError as exc:  # the message names the account and what to check
        return [exc.message]
    except HelpdeskError as exc:
        return [f"the osTicket database cannot be read: {exc.message}"]
    return [problem for step in steps for problem in step.problems]
