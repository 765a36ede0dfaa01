"""What ``escalations provision`` wants Zammad to hold, and the plan from what it holds now.

Pure: it reads the mappings (``process.toml`` for the options, ``zammad.toml`` for the names,
``zammad-provision.toml`` for what agents see) and a snapshot of Zammad's admin lists, and
returns steps (create, update, unchanged, changed by hand). The application layer reads the
snapshot and carries the steps out, in three phases, because later objects name earlier ones
by id:

1. ticket attributes (then Zammad's migrations step, which makes their columns);
2. the parked state, the escalation group, the tags, the placeholder customer, the webhook;
3. macros, overviews, text modules and the trigger (they name states, the group, roles and
   the webhook by id).

**Whose object is it.** Every object with a ``note`` gets ``<spec note> · <fingerprint>``,
the fingerprint being a hash of the fields provision set. At the next run an object whose
fields still hash to the fingerprint in its note is provision's own as it left it: when the
mappings changed, it is updated. One whose fields no longer match its note was changed by
hand (or was never provision's): it is reported and kept, and overwritten only with
``force``. Attributes have no note: their options follow ``process.toml`` (the worker reads
those keys), so a difference there is always updated; a label, position or screen that differs
is reported as changed by hand.

Zammad facts used (``shared/reference/zammad-api.md`` §9–11): attribute screens are keyed
``create_middle``/``edit`` by role permission and ``required`` on ``edit`` would make every
update fail, so it is never set; a ``datetime`` attribute needs ``future`` and ``past``; the
parked state is a ``pending reminder`` with ``ignore_escalation``; ``perform`` values are
strings (``"true"``), tags are added with ``operator: add``, states by id; overviews need
``role_ids``; a trigger calls a webhook with ``notification.webhook``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from escalations.bindings.zammad.fieldmap import ZammadFieldMap
from escalations.bindings.zammad.provision_spec import LEVEL_PLACEHOLDER, ProvisionSpec
from escalations.profile import ProcessProfile

Json = dict[str, Any]
ADMIN_LISTS = (
    "object_manager_attributes",
    "ticket_states",
    "groups",
    "roles",
    "tag_list",
    "macros",
    "overviews",
    "text_modules",
    "triggers",
    "webhooks",
)
"""Zammad's admin lists a plan is made against (the ``Snapshot``'s kinds)."""
WEBHOOK_LISTS = frozenset({"triggers", "webhooks"})
"""Needed only with a webhook URL: a token without ``admin.trigger``/``admin.webhook``
provisions everything else."""
FINGERPRINT_SEPARATOR = " · "
SECRET_SHOWN_AS = "(secret)"  # noqa: S105 - the mask, not a secret
"""Shown in a diff instead of the webhook's signature token."""


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    HAND_EDITED = "changed by hand, kept"
    FORCED = "changed by hand, overwritten (--force)"


@dataclass(frozen=True)
class Wanted:
    """One object as provision wants it: its admin list (``kind``), the name it is found
    by, and the fields provision sets."""

    kind: str
    name: str
    body: Json
    noted: bool = True
    """Whether the object has a ``note`` to carry the fingerprint."""
    owned_keys: frozenset[str] = frozenset()
    """For objects without a note: keys whose difference is always updated (they follow the
    mappings); any other difference counts as changed by hand."""
    partial_keys: Mapping[str, int] = field(default_factory=dict)
    """Keys whose value Zammad fills in with entries of its own (an attribute's
    ``data_option`` gains ``relation``, ``nulloption``, ``historical_options`` …), with the
    depth to which only the entries provision sends are compared; below it, values compare
    whole (a select's ``options`` must be exactly the mappings')."""


@dataclass(frozen=True)
class Step:
    action: Action
    kind: str
    name: str
    object_id: int | None
    body: Json
    diff: tuple[str, ...] = ()

    @property
    def writes(self) -> bool:
        return self.action in (Action.CREATE, Action.UPDATE, Action.FORCED)

    def line(self) -> str:
        what = f"{self.action.value:<9} {self.kind} {self.name!r}"
        return what + (": " + "; ".join(self.diff) if self.diff else "")


@dataclass
class Snapshot:
    """Zammad's admin lists, by kind (``macros`` → its objects)."""

    lists: dict[str, list[Json]] = field(default_factory=dict)

    def of(self, kind: str) -> list[Json]:
        return self.lists.get(kind, [])

    def find(self, kind: str, name: str) -> Json | None:
        """By name (case-insensitively, as Zammad compares names); for names Zammad does
        not keep unique (overviews, text modules), provision's own object (its note carries
        a fingerprint) first."""
        matches = [o for o in self.of(kind) if str(o.get("name", "")).lower() == name.lower()]
        ours = [o for o in matches if FINGERPRINT_SEPARATOR in str(o.get("note") or "")]
        found = ours or matches
        return found[0] if found else None

    def id_of(self, kind: str, name: str) -> int | str:
        """The id of a named object; in a dry run, a stand-in for one not created yet."""
        found = self.find(kind, name)
        return int(found["id"]) if found is not None else f"(new {kind} {name!r})"


# -- fingerprints ------------------------------------------------------------------------------


def fingerprint(body: Mapping[str, Any]) -> str:
    canonical = json.dumps({k: _plain(v) for k, v in body.items()}, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """JSON-comparable: ids as strings inside ``perform``/``condition`` are what Zammad keeps."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def noted(note: str, body: Mapping[str, Any]) -> str:
    return f"{note}{FINGERPRINT_SEPARATOR}{fingerprint(body)}"


def _note_fingerprint(current: Mapping[str, Any], note: str) -> str | None:
    text = str(current.get("note") or "")
    head, sep, tail = text.rpartition(FINGERPRINT_SEPARATOR)
    return tail.strip() if sep and head == note else None


# -- planning ----------------------------------------------------------------------------------


def plan(
    wanted: Sequence[Wanted], snapshot: Snapshot, *, note: str, force: bool = False
) -> list[Step]:
    """A step per wanted object, in the given order."""
    return [_step(w, snapshot, note=note, force=force) for w in wanted]


def _step(wanted: Wanted, snapshot: Snapshot, *, note: str, force: bool) -> Step:
    current = snapshot.find(wanted.kind, wanted.name)
    body = dict(wanted.body)
    if wanted.noted:
        body["note"] = noted(note, wanted.body)
    if current is None:
        return Step(Action.CREATE, wanted.kind, wanted.name, None, body)
    object_id = int(current["id"])
    differs = [
        k
        for k in wanted.body
        if not covers(current.get(k), wanted.body[k], depth=wanted.partial_keys.get(k, 0))
    ]
    if not differs:
        return Step(Action.UNCHANGED, wanted.kind, wanted.name, object_id, body)
    diff = tuple(_diff(k, current.get(k), wanted.body[k]) for k in differs)
    if wanted.noted:
        as_left = _note_fingerprint(current, note) == fingerprint(
            {k: current.get(k) for k in wanted.body}
        )
    else:
        as_left = set(differs) <= wanted.owned_keys
    if as_left:
        return Step(Action.UPDATE, wanted.kind, wanted.name, object_id, body, diff)
    action = Action.FORCED if force else Action.HAND_EDITED
    return Step(action, wanted.kind, wanted.name, object_id, body, diff)


def covers(now: Any, wanted: Any, *, depth: int = 0) -> bool:
    """Equal as JSON; for the first ``depth`` levels of nested objects, ``now`` may hold
    entries ``wanted`` does not name."""
    if depth > 0 and isinstance(wanted, Mapping):
        return isinstance(now, Mapping) and all(
            covers(now.get(k), v, depth=depth - 1) for k, v in wanted.items()
        )
    return bool(_plain(now) == _plain(wanted))


def _diff(key: str, now: Any, wanted: Any) -> str:
    if key == "signature_token":
        return f"{key}: {SECRET_SHOWN_AS} → {SECRET_SHOWN_AS}"
    return f"{key}: {_short(now)} → {_short(wanted)}"


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(_plain(value), ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- phase 1: ticket attributes ----------------------------------------------------------------


AGENT = "ticket.agent"
CUSTOMER = "ticket.customer"


def _screens(*, on_create: bool, on_edit: bool = True) -> Json:
    """Shown to agents where they work; never to customers; never ``required`` (a required
    edit field makes every ticket update fail until it has a value)."""
    return {
        "create_middle": {
            AGENT: {"shown": on_create, "required": False, "item_class": "column"},
            CUSTOMER: {"shown": False, "required": False},
        },
        "edit": {
            AGENT: {"shown": on_edit, "required": False},
            CUSTOMER: {"shown": False, "required": False},
        },
    }


def attributes(
    fieldmap: ZammadFieldMap, profile: ProcessProfile, spec: ProvisionSpec
) -> list[Wanted]:
    looks = spec.attributes
    fields = fieldmap.fields
    levels = {str(lv.number): f"{lv.number} – {lv.name} ({lv.role})" for lv in profile.levels}
    reasons = {r.key: r.label for r in profile.reasons}
    segments = {key: seg.label for key, seg in profile.segments.items()}

    def select(options: Mapping[str, str]) -> Json:
        return {"options": dict(options), "default": "", "null": True, "nulloption": True}

    def boolean() -> Json:
        return {"options": {"true": "yes", "false": "no"}, "default": False, "null": True}

    specs: list[tuple[str | None, Any, str, Json, Json]] = [
        # (attribute name, look, data type, data option, screens)
        (fieldmap.flag.field, looks.flag, "boolean", boolean(), _screens(on_create=True)),
        (fields.level, looks.level, "select", select(levels), _screens(on_create=False)),
        (fields.reason, looks.reason, "select", select(reasons), _screens(on_create=True)),
        (fields.segment, looks.segment, "select", select(segments), _screens(on_create=True)),
        (
            fields.callback_at,
            looks.callback_at,
            "datetime",
            {"future": True, "past": True, "diff": None, "null": True},
            _screens(on_create=True),
        ),
        (
            fields.rfo,
            looks.rfo,
            "textarea",
            {"maxlength": 20000, "rows": 6, "null": True, "default": ""},
            _screens(on_create=False),
        ),
        (
            fields.escalation_key,
            looks.escalation_key,
            "input",
            {"type": "text", "maxlength": 60, "null": True, "default": ""},
            _screens(on_create=False),
        ),
        (
            fields.original_ticket,
            looks.original_ticket,
            "input",
            {"type": "text", "maxlength": 40, "null": True, "default": ""},
            _screens(on_create=False),
        ),
        (
            fields.agreed_cadence,
            looks.agreed_cadence,
            "integer",
            {"min": 15, "max": 100000, "null": True, "default": None},
            _screens(on_create=True),
        ),
        (  # kept by the worker; shown so the agent sees it where they work
            fields.next_duty_at,
            looks.next_duty_at,
            "datetime",
            {"future": True, "past": True, "diff": None, "null": True},
            _screens(on_create=False),
        ),
        (fields.escalated, looks.escalated, "boolean", boolean(), _screens(on_create=False)),
        (fields.route_failed, looks.route_failed, "boolean", boolean(), _screens(on_create=False)),
    ]
    wanted = []
    for name, look, data_type, data_option, screens in specs:
        if name is None:
            continue
        display = look.display if look is not None else name.replace("_", " ").capitalize()
        position = look.position if look is not None else 1600
        wanted.append(
            Wanted(
                kind="object_manager_attributes",
                name=name,
                body={
                    "object": "Ticket",
                    "name": name,
                    "display": display,
                    "data_type": data_type,
                    "data_option": data_option,
                    "screens": screens,
                    "position": position,
                    "active": True,
                },
                noted=False,
                owned_keys=frozenset({"data_option"}),
                partial_keys={"data_option": 1, "screens": 3},
            )
        )
    return wanted


# -- phase 2: state, group, tags, placeholder customer, webhook --------------------------------


def basics(
    fieldmap: ZammadFieldMap,
    profile: ProcessProfile,
    spec: ProvisionSpec,
    snapshot: Snapshot,
    *,
    webhook_url: str | None,
    webhook_secret: str | None,
) -> list[Wanted]:
    wanted = [
        Wanted(
            kind="ticket_states",
            name=fieldmap.states.parked,
            body={
                "name": fieldmap.states.parked,
                "state_type": "pending reminder",
                "ignore_escalation": True,
                "active": True,
            },
        )
    ]
    if snapshot.find("groups", fieldmap.groups.escalation) is None or _ours(
        snapshot.find("groups", fieldmap.groups.escalation), spec.note
    ):
        wanted.append(
            Wanted(
                kind="groups",
                name=fieldmap.groups.escalation,
                body={"name": fieldmap.groups.escalation, "active": True},
            )
        )
    for tag in sorted(tags_of(fieldmap) | level_tags(fieldmap, profile)):
        wanted.append(Wanted(kind="tag_list", name=tag, body={"name": tag}, noted=False))
    if webhook_url:
        wanted.append(
            Wanted(
                kind="webhooks",
                name=spec.webhook.name,
                body={
                    "name": spec.webhook.name,
                    "endpoint": webhook_url,
                    "signature_token": webhook_secret or "",
                    "ssl_verify": True,
                    "active": True,
                },
            )
        )
    return wanted


def _ours(found: Json | None, note: str) -> bool:
    return found is not None and _note_fingerprint(found, note) is not None


def tags_of(fieldmap: ZammadFieldMap) -> set[str]:
    """Every tag the worker sets or agents are told to set (without the level template)."""
    tags = fieldmap.tags
    names = {
        tags.escalated,
        tags.escalation,
        tags.parked,
        tags.confirmed,
        tags.not_satisfied,
        tags.carrier_route_failed,
    }
    if fieldmap.flag.tag:
        names.add(fieldmap.flag.tag)
    return names


def level_tags(fieldmap: ZammadFieldMap, profile: ProcessProfile) -> set[str]:
    return {fieldmap.tags.level.replace("{level}", str(n)) for n in range(1, profile.max_level + 1)}


def placeholder_customer(fieldmap: ZammadFieldMap) -> Json | None:
    """The internal customer escalation tickets are raised for, or ``None`` when they are
    raised for the real customer. Its address is never one mail can reach (the mappings
    check refuses anything but an address), so Zammad's auto-reply has no one to write to."""
    address = fieldmap.customer.placeholder
    if not address:
        return None
    return {
        "login": address,
        "email": address,
        "firstname": "Escalations",
        "lastname": "(internal)",
        "roles": ["Customer"],
        "active": True,
    }


# -- phase 3: macros, overviews, text modules, trigger -----------------------------------------


def _tag_perform(tag: str) -> Json:
    return {"ticket.tags": {"operator": "add", "value": tag}}


def macros(
    fieldmap: ZammadFieldMap, profile: ProcessProfile, spec: ProvisionSpec, snapshot: Snapshot
) -> list[Wanted]:
    names = spec.macros
    group = [snapshot.id_of("groups", fieldmap.groups.escalation)]
    closed = str(snapshot.id_of("ticket_states", fieldmap.states.closed))
    escalate: Json = {}
    if fieldmap.flag.field:
        escalate[f"ticket.{fieldmap.flag.field}"] = {"value": "true"}
    if fieldmap.flag.tag:
        escalate.update(_tag_perform(fieldmap.flag.tag))
    route_failed = (
        {f"ticket.{fieldmap.fields.route_failed}": {"value": "true"}}
        if fieldmap.fields.route_failed
        else _tag_perform(fieldmap.tags.carrier_route_failed)
    )
    found: list[tuple[str, Json, list[Any]]] = [(names.escalate, escalate, [])]
    for level in range(2, profile.max_level + 1):
        found.append(
            (
                names.level.replace(LEVEL_PLACEHOLDER, str(level)),
                {f"ticket.{fieldmap.fields.level}": {"value": str(level)}},
                group,
            )
        )
    found += [
        (names.route_failed, route_failed, group),
        (names.resolved, {"ticket.state_id": {"value": closed}}, group),
        (names.confirmed, _tag_perform(fieldmap.tags.confirmed), group),
        (names.not_satisfied, _tag_perform(fieldmap.tags.not_satisfied), group),
    ]
    return [
        Wanted(
            kind="macros",
            name=name,
            body={
                "name": name,
                "perform": perform,
                "ux_flow_next_up": "none",
                "group_ids": group_ids,
                "active": True,
            },
        )
        for name, perform, group_ids in found
    ]


def overviews(fieldmap: ZammadFieldMap, spec: ProvisionSpec, snapshot: Snapshot) -> list[Wanted]:
    names = spec.overviews
    roles = [snapshot.id_of("roles", role) for role in names.roles]
    group = {"operator": "is", "value": [str(snapshot.id_of("groups", fieldmap.groups.escalation))]}
    open_state = str(snapshot.id_of("ticket_states", fieldmap.states.open))
    parked = str(snapshot.id_of("ticket_states", fieldmap.states.parked))
    level = fieldmap.fields.level
    next_duty = fieldmap.fields.next_duty_at

    def view(*columns: str) -> Json:
        cols = list(columns)
        return {"d": cols, "s": cols, "m": cols, "view_mode_default": "s"}

    found = [
        (
            names.open_by_level,
            {
                "ticket.group_id": group,
                "ticket.state_id": {"operator": "is", "value": [open_state]},
            },
            {"by": "created_at", "direction": "ASC"},
            view("number", "title", "owner", level, "created_at"),
            level,
        ),
        *(
            [
                (
                    names.due_today,
                    {
                        "ticket.group_id": group,
                        "ticket.state_id": {"operator": "is", "value": [open_state, parked]},
                        f"ticket.{next_duty}": {"operator": "today"},
                    },
                    {"by": next_duty, "direction": "ASC"},
                    view("number", "title", "owner", next_duty, level),
                    "owner",
                )
            ]
            if next_duty is not None and names.due_today is not None
            else []
        ),
        (
            names.parked,
            {"ticket.group_id": group, "ticket.state_id": {"operator": "is", "value": [parked]}},
            {"by": "pending_time", "direction": "ASC"},
            view("number", "title", "owner", "pending_time"),
            "owner",
        ),
        (
            names.confirmations_due,
            {
                "ticket.group_id": group,
                "ticket.state_id": {"operator": "is", "value": [parked]},
                "ticket.pending_time": {
                    "operator": "within next (relative)",
                    "value": "1",
                    "range": "day",
                },
            },
            {"by": "pending_time", "direction": "ASC"},
            view("number", "title", "owner", "pending_time"),
            "owner",
        ),
    ]
    return [
        Wanted(
            kind="overviews",
            name=name,
            body={
                "name": name,
                "link": _slug(name),
                "role_ids": roles,
                "condition": condition,
                "order": order,
                "view": columns,
                "group_by": group_by,
                "active": True,
            },
        )
        for name, condition, order, columns, group_by in found
    ]


def _slug(name: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "_" for ch in name)
    return "_".join(part for part in out.split("_") if part)


def text_modules(spec: ProvisionSpec, carrier_text: str) -> list[Wanted]:
    modules = spec.text_modules
    found = [
        (modules.carrier, carrier_text),
        (modules.rfo, modules.rfo.content or ""),
        (modules.customer_update, modules.customer_update.content or ""),
        (modules.call_note, modules.call_note.content or ""),
    ]
    return [
        Wanted(
            kind="text_modules",
            name=module.name,
            body={
                "name": module.name,
                "keywords": module.keyword,
                "content": as_html(text),
                "active": True,
            },
        )
        for module, text in found
    ]


def as_html(text: str) -> str:
    """Plain lines as the HTML Zammad keeps for a text module (one ``<div>`` per line, so an
    agent's editor shows them as lines and the parser reads them back as lines)."""
    from html import escape

    lines = text.strip("\n").split("\n")
    return "".join(f"<div>{escape(line) if line else '<br>'}</div>" for line in lines)


def trigger(fieldmap: ZammadFieldMap, spec: ProvisionSpec, snapshot: Snapshot) -> Wanted:
    """Calls the webhook when a ticket carrying an escalation-related tag is created or
    changed (the flag tag too, which the Escalate macro sets)."""
    tags = {fieldmap.tags.escalation, fieldmap.tags.escalated}
    if fieldmap.flag.tag:
        tags.add(fieldmap.flag.tag)
    return Wanted(
        kind="triggers",
        name=spec.webhook.trigger,
        body={
            "name": spec.webhook.trigger,
            "activator": "action",
            "execution_condition_mode": "always",
            "condition": {
                "ticket.tags": {"operator": "contains one", "value": ", ".join(sorted(tags))}
            },
            "perform": {
                "notification.webhook": {
                    "webhook_id": str(snapshot.id_of("webhooks", spec.webhook.name))
                }
            },
            "active": True,
        },
    )
