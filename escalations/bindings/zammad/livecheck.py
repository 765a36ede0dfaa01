"""``escalations check --live``: does the helpdesk have everything the mappings name, and may
the worker's token do what the worker does? One line per problem, and — what matters as
much — one line per thing it could **not** verify.

Two parts:

* ``live_check`` — what the worker itself relies on, through the adapter and the worker's
  token: its user and group access, the states, the attributes (by name, and their options
  where the token may read them), the tags, the people, the caller log.
* ``provisioned_drift`` — what ``escalations provision`` makes (attributes with their options
  and screens, the parked state, the group, macros, overviews, text modules), checked by
  running provision's own planner against Zammad's admin lists: whatever provision would
  create or update is a problem; an object changed by hand is a note. Lists the token may not
  read are reported as not verified, never as fine. An agent token (``ticket.agent``) may
  read ``AGENT_READABLE``; the object manager, overviews, triggers and webhooks need admin
  permissions (the admin token, ``ESCALATIONS_HELPDESK_ADMIN_TOKEN``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from connector.base import Capability, FieldInfo, HelpdeskAdapter, User
from connector.errors import AuthError, Forbidden, NotFound
from connector.zammad.admin import PENDING_FLAGS
from escalations.bindings.zammad import provision as pv
from escalations.bindings.zammad.fieldmap import ZammadFieldMap
from escalations.bindings.zammad.provision_spec import ProvisionSpec
from escalations.mappings import PROCESS_FILE, Mappings

log = logging.getLogger(__name__)

PENDING_TYPES = ("pending reminder", "pending action")
AGENT_READABLE = frozenset({"ticket_states", "groups", "roles", "macros", "text_modules"})
"""Admin lists a ``ticket.agent`` token may read (Zammad's policies: agents see states,
groups, roles, and the macros and text modules of their groups)."""
DRIFT_KINDS: tuple[str, ...] = (
    "object_manager_attributes",
    "ticket_states",
    "groups",
    "roles",
    "macros",
    "overviews",
    "text_modules",
)
"""The admin lists ``provisioned_drift`` compares."""
KIND_LABELS = {
    "object_manager_attributes": "ticket attribute",
    "ticket_states": "state",
    "groups": "group",
    "macros": "macro",
    "overviews": "overview",
    "text_modules": "text module",
}
UNVERIFIED_FIELDS = (
    "ticket attributes: not verified (the worker's token may not list them and no ticket is "
    "readable yet; set ESCALATIONS_HELPDESK_ADMIN_TOKEN for check --live, or check again once "
    "a ticket exists)"
)
UNVERIFIED_OPTIONS = (
    "options of the level, reason and segment attributes: not verified (the worker's token "
    "sees attribute names on a ticket, not their options; set ESCALATIONS_HELPDESK_ADMIN_TOKEN)"
)
ATTRIBUTE_ADVICE = frozenset({UNVERIFIED_FIELDS, UNVERIFIED_OPTIONS})
"""What is said of the attributes when the worker's token could not list them (both advise the
admin token)."""


@dataclass(frozen=True)
class Drift:
    """What ``provisioned_drift`` found."""

    problems: tuple[str, ...]
    notes: tuple[str, ...]
    """Objects changed by hand (kept by provision; not a failure)."""
    unverified: tuple[str, ...]


def provisioned_drift(
    mappings: Mappings,
    spec: ProvisionSpec,
    snapshot: pv.Snapshot,
    readable: frozenset[str],
    carrier_text: str,
) -> Drift:
    """Provision's plan against the admin lists in ``snapshot`` (only the ``readable``
    kinds): a step that would write is a problem. A missing state, group or attribute is
    left to ``live_check``, which names the mapping key."""
    fieldmap = mappings.helpdesk
    assert isinstance(fieldmap, ZammadFieldMap)
    profile = mappings.profile
    where = str(mappings.directory / "zammad-provision.toml")
    wanted = [
        *pv.attributes(fieldmap, profile, spec),
        *pv.basics(fieldmap, profile, spec, snapshot, webhook_url=None, webhook_secret=None),
        *pv.macros(fieldmap, profile, spec, snapshot),
        *pv.overviews(fieldmap, spec, snapshot),
        *pv.text_modules(spec, carrier_text),
    ]
    checked = [w for w in wanted if w.kind in readable and w.kind in KIND_LABELS]
    problems: list[str] = []
    notes: list[str] = []
    for step in pv.plan(checked, snapshot, note=spec.note):
        label = f"{KIND_LABELS[step.kind]} '{step.name}'"
        diff = "; ".join(step.diff)
        if step.action is pv.Action.CREATE:
            if step.kind not in ("ticket_states", "groups", "object_manager_attributes"):
                problems.append(f"{label} not found (escalations provision creates it)")
        elif step.action is pv.Action.UPDATE:
            problems.append(
                f"{label} differs from the mappings ({diff}): escalations provision updates it"
            )
        elif step.action is pv.Action.HAND_EDITED:
            broken = _no_longer_works(step, snapshot, spec)
            if broken:
                problems.append(
                    f"{label} was changed by hand and {broken} ({diff}): "
                    "escalations provision --force restores it"
                )
            else:
                notes.append(f"{label} was changed by hand ({diff}); provision keeps it")
    if "object_manager_attributes" in readable:
        for row in snapshot.of("object_manager_attributes"):
            pending = [flag for flag in PENDING_FLAGS if row.get(flag)]
            if pending and row.get("object", "Ticket") == "Ticket":
                problems.append(
                    f"ticket attribute '{row.get('name')}' is staged ({', '.join(pending)}) but "
                    "Zammad's migrations have not run: escalations provision runs them"
                )
    unverified = [
        f"{KIND_LABELS[kind]}s ({where}): not verified (the token may not read them; set "
        "ESCALATIONS_HELPDESK_ADMIN_TOKEN for check --live)"
        for kind in dict.fromkeys(w.kind for w in wanted)
        if kind in KIND_LABELS and kind not in readable and kind != "object_manager_attributes"
    ]
    return Drift(tuple(problems), tuple(notes), tuple(unverified))


def _no_longer_works(step: pv.Step, snapshot: pv.Snapshot, spec: ProvisionSpec) -> str | None:
    """Why a hand-edited object no longer does what the worker relies on, or ``None`` when
    the edit only added to it: a macro must still perform every action provision gave it
    (more is fine); the carrier-contact text module must be the template the parser reads."""
    current = snapshot.find(step.kind, step.name) or {}
    if step.kind == "macros":
        if not pv.covers(current.get("perform"), step.body.get("perform"), depth=2):
            return "no longer performs what the worker relies on"
    elif (
        step.kind == "text_modules"
        and step.name == spec.text_modules.carrier.name
        and current.get("content") != step.body.get("content")
    ):
        return "is no longer the template the worker's parser reads"
    return None


def fields_of(snapshot: pv.Snapshot) -> list[FieldInfo]:
    """The ticket attributes in an admin snapshot that are columns already (as the adapter
    reads them with ``admin.object``)."""
    fields = []
    for row in snapshot.of("object_manager_attributes"):
        if row.get("object", "Ticket") != "Ticket" or row.get("to_create") or row.get("to_delete"):
            continue
        option = row.get("data_option")
        options = option.get("options") if isinstance(option, dict) else None
        fields.append(
            FieldInfo(
                name=str(row.get("name", "")),
                data_type=str(row.get("data_type", "")),
                options=frozenset(str(k) for k in options)
                if isinstance(options, dict)
                else frozenset(),
            )
        )
    return fields


def live_check(adapter: HelpdeskAdapter, mappings: Mappings) -> list[str]:
    """The problems only (see ``live_report``), the fields read through the adapter."""
    return live_report(adapter, mappings).problems


@dataclass(frozen=True)
class LiveReport:
    problems: list[str]
    unverified: list[str]
    notes: list[str] = field(default_factory=list)


def live_report(
    adapter: HelpdeskAdapter,
    mappings: Mappings,
    *,
    fields: list[FieldInfo] | None = None,
    fields_known: bool = False,
    me: User | None = None,
) -> LiveReport:
    """``fields_known``: ``fields`` come from the object manager (the admin token's view);
    otherwise they are read through the adapter, which with an agent token sees names on a
    ticket at best. ``me``: the worker's user, when the caller has read it already."""
    fieldmap = mappings.helpdesk
    assert isinstance(fieldmap, ZammadFieldMap)
    profile = mappings.profile
    where = str(mappings.helpdesk_file)
    problems: list[str] = []

    unverified: list[str] = []
    try:
        me = me if me is not None else adapter.me()
    except AuthError as exc:
        return LiveReport(
            [f"the token was refused ({exc.status}): check ESCALATIONS_HELPDESK_TOKEN"], []
        )

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
    notes: list[str] = []
    if not fields_known:
        fields = adapter.list_fields()
        if fields and all(f.data_type != "unknown" for f in fields):
            notes.append(
                f"the worker's token (user '{me.login}') may read the object manager (an admin "
                "permission): it needs ticket.agent only (docs/admins.md §1)"
            )
    if fields is None:
        unverified.append(UNVERIFIED_FIELDS)
    else:
        if not fields_known and any(f.data_type == "unknown" for f in fields):
            unverified.append(UNVERIFIED_OPTIONS)
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
                problems.append(
                    f"{where}: {key}: tag '{tag}' not found (escalations provision creates it)"
                )

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
    problems += _note_ticket_problems(adapter, mappings, me)
    return LiveReport(problems, unverified, notes)


def _note_ticket_problems(adapter: HelpdeskAdapter, mappings: Mappings, me: User) -> list[str]:
    """``[report] note_on_ticket``: the ticket exists, and the worker may add a note to it."""
    ticket_id = mappings.profile.report.note_on_ticket
    if ticket_id is None:
        return []
    where = f"{mappings.directory / PROCESS_FILE}: report.note_on_ticket"
    try:
        ticket = adapter.get_ticket(ticket_id)
    except NotFound:
        return [f"{where}: ticket {ticket_id} not found"]
    except Forbidden:
        return [f"{where}: the worker's user '{me.login}' may not read ticket {ticket_id}"]
    access = me.group_access.get(ticket.group, frozenset())
    if "full" in access or {"create", "change"} <= access:
        return []
    return [
        f"{where}: the worker's user '{me.login}' lacks "
        f"{', '.join(sorted({'change', 'create'} - access))} access to group '{ticket.group}' "
        f"of ticket #{ticket.number} (a note needs change access, and create on Zammad 6.5)"
    ]


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
