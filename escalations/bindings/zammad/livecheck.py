"""``escalations check --live``: does the helpdesk have everything the mappings name, and may
the worker's token do what the worker does? One line per problem."""

from __future__ import annotations

import logging

from connector.base import Capability, HelpdeskAdapter, User
from connector.errors import AuthError, Forbidden
from escalations.bindings.zammad.fieldmap import ZammadFieldMap
from escalations.mappings import PROCESS_FILE, Mappings

log = logging.getLogger(__name__)

PENDING_TYPES = ("pending reminder", "pending action")


def live_check(adapter: HelpdeskAdapter, mappings: Mappings) -> list[str]:
    fieldmap = mappings.helpdesk
    assert isinstance(fieldmap, ZammadFieldMap)
    profile = mappings.profile
    where = str(mappings.helpdesk_file)
    problems: list[str] = []

    try:
        me = adapter.me()
    except AuthError as exc:
        return [f"the token was refused ({exc.status}): check ESCALATIONS_HELPDESK_TOKEN"]

    # groups and the bot's access to the escalation group
    groups = {g.name for g in adapter.list_groups() if g.active}
    escalation_group = fieldmap.groups.escalation
    if escalation_group not in groups:
        problems.append(f"{where}: groups.escalation: group '{escalation_group}' not found")
    access = me.group_access.get(escalation_group, frozenset())
    missing_access = {"read", "create", "change"} - access if "full" not in access else set()
    if escalation_group in groups and missing_access:
        problems.append(
            f"{where}: groups.escalation: the worker's user '{me.login}' lacks "
            f"{', '.join(sorted(missing_access))} access to group '{escalation_group}'"
        )
    if not me.is_agent:
        problems.append(f"the worker's user '{me.login}' is not an agent (needs ticket.agent)")

    # states
    states = {s.name: s for s in adapter.list_states() if s.active}
    for key in ("open", "parked", "closed"):
        name = getattr(fieldmap.states, key)
        if name not in states:
            problems.append(f"{where}: states.{key}: state '{name}' not found")
    parked = states.get(fieldmap.states.parked)
    if parked is not None and parked.type not in PENDING_TYPES:
        problems.append(
            f"{where}: states.parked: state '{parked.name}' is of type '{parked.type}' "
            "(expected a pending state)"
        )

    # custom attributes and their options
    fields = adapter.list_fields()
    if fields is None:
        log.info("livecheck.fields_unverified (the token may not list object attributes)")
    else:
        known = {f.name: f for f in fields}
        names = {f"fields.{k}": v for k, v in fieldmap.fields.model_dump().items() if v is not None}
        if fieldmap.flag.field:
            names["flag.field"] = fieldmap.flag.field
        for key, name in names.items():
            if name not in known:
                problems.append(f"{where}: {key}: ticket attribute '{name}' not found")
        expected_options = {
            fieldmap.fields.reason: set(profile.reason_keys),
            fieldmap.fields.segment: set(profile.segments),
            fieldmap.fields.level: {str(n) for n in range(1, profile.max_level + 1)},
        }
        for name, wanted in expected_options.items():
            info = known.get(name)
            if info is None or not info.options:
                continue
            missing = wanted - info.options
            if missing:
                problems.append(
                    f"{where}: fields: attribute '{name}' lacks option(s) "
                    f"{', '.join(sorted(missing))}"
                )

    # tags: Zammad silently skips a tag it may not create, so each must exist
    tag_exists = getattr(adapter, "tag_exists", None)
    if tag_exists is not None:
        tag_names = {
            "tags.escalated": fieldmap.tags.escalated,
            "tags.escalation": fieldmap.tags.escalation,
            "tags.parked": fieldmap.tags.parked,
            "tags.confirmed": fieldmap.tags.confirmed,
            "tags.not_satisfied": fieldmap.tags.not_satisfied,
            "tags.carrier_route_failed": fieldmap.tags.carrier_route_failed,
        }
        if fieldmap.flag.tag:
            tag_names["flag.tag"] = fieldmap.flag.tag
        for n in range(1, profile.max_level + 1):
            tag_names[f"tags.level ({n})"] = fieldmap.level_tag(n)
        for key, tag in tag_names.items():
            if not tag_exists(tag):
                problems.append(f"{where}: {key}: tag '{tag}' not found (create it in Zammad)")

    # people: owners need full access, watchers read access, to the escalation group
    levels = range(1, profile.max_level + 1)
    owner_roles = {r for n in levels if (r := profile.owner_role(n)) is not None}
    owner_roles.add(profile.carrier.handover_role)
    watch_roles = {r for n in levels for r in profile.roles_for_level(n)}
    for role in sorted(owner_roles | watch_roles):
        ref = fieldmap.people.get(role)
        if not ref:
            continue  # the mapping validator already reports unmapped roles
        user = adapter.find_user(ref)
        if user is None:
            problems.append(f"{where}: people.{role}: user '{ref}' not found")
            continue
        problems += _person_problems(where, role, user, escalation_group, role in owner_roles)

    placeholder = fieldmap.customer.placeholder
    if placeholder and adapter.find_user(placeholder) is None:
        problems.append(f"{where}: customer.placeholder: user '{placeholder}' not found")
    if profile.comms.caller_log:
        problems += _caller_log_problems(adapter, mappings, me)
    return problems


def _caller_log_problems(adapter: HelpdeskAdapter, mappings: Mappings, me: User) -> list[str]:
    where = f"{mappings.directory / PROCESS_FILE}: comms.caller_log"
    if Capability.CALL_LOG not in adapter.capabilities:
        return [f"{where}: this helpdesk has no caller log"]
    try:
        adapter.recent_calls()
    except Forbidden:
        return [
            f"{where}: the worker's token (user '{me.login}') may not read the caller log "
            "(it needs the cti.agent permission)"
        ]
    return []


def _person_problems(where: str, role: str, user: User, group: str, owns: bool) -> list[str]:
    if not user.active:
        return [f"{where}: people.{role}: user '{user.login}' is inactive"]
    if not user.is_agent:
        return [f"{where}: people.{role}: user '{user.login}' is not an agent"]
    access = user.group_access.get(group, frozenset())
    if owns and "full" not in access:
        return [
            f"{where}: people.{role}: user '{user.login}' needs full access to group "
            f"'{group}' to own escalation tickets"
        ]
    if not access & {"read", "full"}:
        return [
            f"{where}: people.{role}: user '{user.login}' needs read access to group "
            f"'{group}' to be subscribed"
        ]
    return []
