"""``perform`` and ``condition`` as macros, triggers and overviews use them
(``reference/zammad-api.md`` §11.1, §4.4): validation when the object is saved, application
to a ticket (a macro as the agent who runs it, a trigger as the system), the action triggers
run after every transaction, and the webhook payload they send.

Validation (``verify_perform_rules_validator.rb``): keys are ``ticket.<column>`` (a real
column, a migrated custom attribute, ``tags``, ``subscribe``, ``unsubscribe``; ``action``
for triggers), ``article.note`` or ``notification.email|sms|webhook``; anything else gets
422 "… contains invalid attributes". ``article.note`` needs ``body``, ``subject`` and
``internal``, each not blank the way Rails means it (a JSON ``false`` is blank), and the
error Zammad renders is cut at its first comma, as ``humanize_error`` cuts every
"Validation failed: …" message.

Application goes through ``Rules.update_ticket`` (the path an agent's own update takes:
Core Workflow checks, ``updated_at``, history rows, now stamped ``sourceable_*`` with the
macro or trigger), then tags, subscriptions and the note. ``notification.email`` and
``notification.sms`` are not modelled (nothing is recorded); ``ticket.action: delete`` is
accepted on triggers and not carried out.

Triggers: after each transaction (an API request, or a scenario helper) every active
trigger with ``activator: action`` is checked against each ticket the transaction created
or changed, in name order, at most once per ticket. Conditions are the selector of
``search.py`` plus ``ticket.action`` (``create``/``update``); in ``selective`` mode an update
counts only when a condition attribute changed or an article was added. Changes a trigger
makes do not run the triggers again. Time triggers never run."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any

from sandbox.actor import Actor
from sandbox.records import ApiError, Ticket, cast_bool, iso
from sandbox.rules import Rules
from sandbox.search import _RANGES, VALID_OPERATORS, Condition, Node, _Matcher
from sandbox.search import parse_selector as _parse_selector
from sandbox.state import SandboxState, TicketChange, as_int, ruby_to_i
from sandbox.views import (
    article_json,
    group_json,
    organization_json,
    priority_json,
    state_json,
    ticket_json,
    user_json,
)
from sandbox.webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

PERFORM_TICKET_COLUMNS = frozenset(
    {
        "title",
        "group_id",
        "priority_id",
        "state_id",
        "organization_id",
        "owner_id",
        "customer_id",
        "note",
        "pending_time",
        "tags",
        "subscribe",
        "unsubscribe",
    }
)
PERFORM_OTHER_KEYS = frozenset(
    {"article.note", "notification.email", "notification.sms", "notification.webhook"}
)
CHECK_PRESENT = {
    "article.note": ("body", "subject", "internal"),
    "notification.email": ("body", "recipient", "subject"),
    "notification.sms": ("body", "recipient"),
    "notification.webhook": ("webhook_id",),
}
CHECK_SPECIFIC_PRESENT = ("ticket.customer_id", "ticket.organization_id", "ticket.owner_id")
SELECTOR_OBJECTS = frozenset(
    {"ticket", "article", "customer", "organization", "owner", "user", "execution_time"}
)
TRIGGER_ONLY_OPERATORS = frozenset(
    {"has changed", "has reached", "has reached warning", "is in working time",
     "is not in working time"}
)  # fmt: skip
NO_VALUE_OPERATORS = frozenset({"today", "is set", "not set", "has changed", "has reached",
                                "has reached warning", "is in working time",
                                "is not in working time"})  # fmt: skip
_TEMPLATE_RE = re.compile(r"#\{(ticket|current_user)\.([a-z_]+)\}")


# -- errors -----------------------------------------------------------------------------------


def validation_failed(*messages: str) -> ApiError:
    """``ActiveRecord::RecordInvalid`` as ``humanize_error`` renders it: "Validation failed:
    a, b" becomes ``{"error": "a", "error_human": "a"}``, the text up to its first comma."""
    text = ", ".join(messages)
    return ApiError(422, text.split(",", 1)[0])


def blank(value: object) -> bool:
    """Rails ``blank?``: nil, false, empty or whitespace-only strings, empty collections."""
    if value is None or value is False:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict | tuple):
        return len(value) == 0
    return False


# -- selectors (condition) --------------------------------------------------------------------


def check_selector(raw: object, *, trigger: bool = False) -> None:
    """``Validations::ObjectSelectorValidator``: 422 "Invalid object selector conditions"
    for a condition that could not be evaluated (unknown operator or object, a missing value
    or range, an operator or attribute the kind of object may not use)."""
    if raw in (None, {}):
        return
    if not isinstance(raw, dict) or not _selector_ok(raw, trigger=trigger):
        raise ApiError(422, "Invalid object selector conditions")


def _selector_ok(raw: dict[str, Any], *, trigger: bool) -> bool:
    if "conditions" in raw:
        if str(raw.get("operator") or "AND").upper() not in ("AND", "OR", "NOT"):
            return False
        items = raw.get("conditions")
        if not isinstance(items, list):
            return False
        for item in items:
            if not isinstance(item, dict):
                return False
            if "conditions" in item:
                if not _selector_ok(item, trigger=trigger):
                    return False
            elif not _condition_ok(str(item.get("name") or ""), item, trigger=trigger):
                return False
        return True
    return all(
        isinstance(spec, dict) and _condition_ok(str(name), spec, trigger=trigger)
        for name, spec in raw.items()
    )


def _condition_ok(name: str, spec: dict[str, Any], *, trigger: bool) -> bool:
    obj, _, attr = name.partition(".")
    if obj not in SELECTOR_OBJECTS or not attr:
        return False
    if name == "ticket.action" and not trigger:
        return False
    operator = spec.get("operator")
    if not isinstance(operator, str) or operator not in VALID_OPERATORS:
        return False
    if operator in TRIGGER_ONLY_OPERATORS and not trigger:
        return False
    if operator in NO_VALUE_OPERATORS:
        return True
    pre = spec.get("pre_condition") or "specific"
    if operator in ("is", "is not") and pre != "specific":
        return pre in ("not_set", "current_user.id", "current_user.organization_id")
    if blank(spec.get("value")):
        return False
    if operator.endswith("(relative)"):
        return str(spec.get("range") or "") in _RANGES and ruby_to_i(spec.get("value"), 0) > 0
    return True


def _condition_names(node: Node | None) -> set[str]:
    if node is None:
        return set()
    if isinstance(node, Condition):
        return {node.name}
    names: set[str] = set()
    for item in node.items:
        names |= _condition_names(item)
    return names


class _TriggerMatcher(_Matcher):
    """The search selector, plus ``ticket.action`` (what the transaction did)."""

    def __init__(self, state: SandboxState, now: datetime, action: str) -> None:
        super().__init__(state, now)
        self.action = action

    def value(self, ticket: Ticket, name: str) -> Any:
        if name == "ticket.action":
            return self.action
        return super().value(ticket, name)


# -- perform: validation ----------------------------------------------------------------------


def check_perform(state: SandboxState, perform: object, *, origin: str) -> None:
    """Validate a macro's or trigger's ``perform`` (``origin``: ``macro`` or ``trigger``)."""
    if perform in (None, {}):
        return
    if not isinstance(perform, dict):
        raise validation_failed("Perform is invalid")
    custom = {a.name for a in state.db.attributes.values()
              if a.object == "Ticket" and a.editable and not a.to_create}  # fmt: skip
    for key, spec in perform.items():
        obj, _, attr = str(key).partition(".")
        known = (
            key in PERFORM_OTHER_KEYS
            or (obj == "ticket" and (attr in PERFORM_TICKET_COLUMNS or attr in custom))
            or (key == "ticket.action" and origin == "trigger")
        )
        if not known or not isinstance(spec, dict):
            raise validation_failed(f"The given {origin} contains invalid attributes: {key}")
    for key, inner in CHECK_PRESENT.items():
        spec = perform.get(key)
        if not isinstance(spec, dict):
            continue
        for name in inner:
            value = spec.get(name)
            missing = all(blank(v) for v in value) if isinstance(value, list) else blank(value)
            if missing:
                raise validation_failed(
                    f"The required 'perform' value for {key}, {name} is missing!"
                )
    for key in CHECK_SPECIFIC_PRESENT:
        spec = perform.get(key)
        specific = isinstance(spec, dict) and spec.get("pre_condition") == "specific"
        if specific and blank(spec.get("value")):  # type: ignore[union-attr]
            raise validation_failed(f"The required 'perform' value for {key}, value is missing!")
    tags = perform.get("ticket.tags")
    if isinstance(tags, dict) and not split_tags(tags.get("value")):
        raise validation_failed("The required 'perform' value for ticket.tags, value is missing!")
    state_spec = perform.get("ticket.state_id")
    if isinstance(state_spec, dict):
        state_id = as_int(state_spec.get("value"))
        pending = perform.get("ticket.pending_time")
        if (
            state_id in state.db.states
            and state.is_pending_state(state_id)
            and not (isinstance(pending, dict) and not blank(pending.get("value")))
        ):
            raise validation_failed(
                'The "Pending till" attribute is required for the selected state action.'
            )
    hook = perform.get("notification.webhook")
    if isinstance(hook, dict):
        webhooks = state.db.admin.get("webhooks", {})
        for ident in webhook_ids(hook):
            if ident not in webhooks:
                raise validation_failed(
                    f"Perform notification.webhook refers to the missing webhook {ident}"
                )


def split_tags(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        for part in str(item if item is not None else "").split(","):
            name = part.strip()
            if name and name not in out:
                out.append(name)
    return out


def webhook_ids(spec: dict[str, Any]) -> list[int]:
    raw = spec.get("webhook_id")
    values = raw if isinstance(raw, list) else [raw]
    return [i for i in (as_int(v) for v in values if not blank(v)) if i is not None]


# -- perform: application ---------------------------------------------------------------------


class Performer:
    """Applies ``perform`` hashes and runs the action triggers."""

    def __init__(self, state: SandboxState, rules: Rules, webhooks: WebhookDispatcher) -> None:
        self.state = state
        self.rules = rules
        self.webhooks = webhooks
        self.macro_webhooks = False
        """Whether a macro's ``notification.webhook`` is delivered (the delivery hook for
        macros); off by default, as only triggers and schedulers call webhooks in Zammad's
        UI."""

    def apply(
        self,
        actor: Actor,
        ticket: Ticket,
        perform: dict[str, Any],
        *,
        source: tuple[str, int, str],
    ) -> list[int]:
        """Apply ``perform`` to ``ticket`` as ``actor``; returns the webhook ids it names.
        Raises ``ApiError`` where the agent's own update would be refused."""
        st = self.state
        params: dict[str, Any] = {}
        tags_add: list[str] = []
        tags_remove: list[str] = []
        subscribe: list[int] = []
        unsubscribe: list[int] = []
        note: dict[str, Any] | None = None
        hooks: list[int] = []
        for key, spec in perform.items():
            if not isinstance(spec, dict):
                continue
            obj, _, attr = key.partition(".")
            if key == "article.note":
                note = spec
            elif key == "notification.webhook":
                hooks.extend(webhook_ids(spec))
            elif obj != "ticket" or attr == "action":
                continue  # notification.email/sms and ticket deletion are not modelled
            elif attr == "tags":
                names = split_tags(spec.get("value"))
                (tags_remove if spec.get("operator") == "remove" else tags_add).extend(names)
            elif attr in ("subscribe", "unsubscribe"):
                user_id = self._user_value(actor, spec)
                if user_id is not None:
                    (subscribe if attr == "subscribe" else unsubscribe).append(user_id)
            elif attr in ("owner_id", "customer_id", "organization_id"):
                value = self._user_value(actor, spec)
                params[attr] = 1 if value is None and attr == "owner_id" else value
            elif attr == "pending_time":
                params[attr] = self._pending_time(spec)
            else:
                params[attr] = self._expand(spec.get("value"), ticket, actor)
        st.source = source
        try:
            if params:
                self.rules.update_ticket(actor, ticket, params)
            for name in tags_add:
                self.rules.tag_add_unchecked(ticket, name, by=actor.user.id)
            for name in tags_remove:
                self.rules.tag_remove(actor, ticket, name)
            for user_id in subscribe:
                user = st.db.users.get(user_id)
                if user is not None and st.group_access(user, ticket.group_id, "read"):
                    self.rules.mention_unchecked(ticket, user_id, actor.user.id)
            for user_id in unsubscribe:
                for mention in st.mentions_of(ticket.id):
                    if mention.user_id == user_id:
                        del st.db.mentions[mention.id]
                        st.touch(ticket)
            if note is not None:
                self._note(actor, ticket, note, system=source[0] == "Trigger")
        finally:
            st.source = None
        return hooks

    @staticmethod
    def _user_value(actor: Actor, spec: dict[str, Any]) -> int | None:
        """A ``pre_condition`` value: ``specific`` (the id given), ``current_user.id``,
        ``current_user.organization_id`` or ``not_set``."""
        pre = spec.get("pre_condition") or "specific"
        if pre == "current_user.id":
            return actor.user.id
        if pre == "current_user.organization_id":
            return actor.user.organization_id
        if pre == "not_set":
            return None
        return as_int(spec.get("value"))

    def _pending_time(self, spec: dict[str, Any]) -> Any:
        if spec.get("operator") == "relative":
            unit = _RANGES.get(str(spec.get("range") or "day"), _RANGES["day"])
            return self.state.now() + unit * ruby_to_i(spec.get("value"), 0)
        return spec.get("value")

    def _expand(self, value: Any, ticket: Ticket, actor: Actor) -> Any:
        """``#{ticket.number}`` and ``#{current_user.firstname}`` in string values."""
        if not isinstance(value, str) or "#{" not in value:
            return value
        rendered = ticket_json(self.state, ticket, mode="names")
        user = user_json(self.state, actor.user)

        def _sub(match: re.Match[str]) -> str:
            source = rendered if match.group(1) == "ticket" else user
            found = source.get(match.group(2))
            return "" if found is None else str(found)

        return _TEMPLATE_RE.sub(_sub, value)

    def _note(self, actor: Actor, ticket: Ticket, spec: dict[str, Any], *, system: bool) -> None:
        params = {
            "type": "note",
            "sender": "System" if system else "Agent",
            "internal": bool(cast_bool(spec.get("internal"))),
            "content_type": "text/html",
            "subject": self._expand(spec.get("subject"), ticket, actor),
            "body": self._expand(spec.get("body"), ticket, actor) or "",
        }
        plan = self.rules.prepare_article(actor, ticket.group_id, params)
        self.rules.apply_article(actor, ticket, plan)

    # -- triggers ------------------------------------------------------------------------------

    def run_triggers(self, journal: dict[int, TicketChange]) -> None:
        """The action triggers for what one transaction did (``journal``)."""
        st = self.state
        triggers = sorted(
            (
                t
                for t in st.db.admin.get("triggers", {}).values()
                if cast_bool(t.get("active")) and t.get("activator") == "action"
            ),
            key=lambda t: (str(t.get("name")), int(t["id"])),
        )
        if not triggers:
            return
        system = Actor(st.db.users[1], postmaster=True)
        for ticket_id, change in journal.items():
            ticket = st.db.tickets.get(ticket_id)
            if ticket is None:
                continue
            for trigger in triggers:
                if not self._applies(trigger, ticket, change, system):
                    continue
                try:
                    hooks = self.apply(
                        system,
                        ticket,
                        dict(trigger.get("perform") or {}),
                        source=("Trigger", int(trigger["id"]), str(trigger["name"])),
                    )
                except ApiError as exc:  # Zammad logs a failed trigger and goes on
                    log.info("sandbox.trigger failed trigger=%s: %s", trigger["id"], exc)
                    continue
                article_id = change.article_ids[-1] if change.article_ids else None
                for hook in hooks:
                    self.deliver(hook, str(trigger["name"]), ticket, article_id)

    def _applies(
        self, trigger: dict[str, Any], ticket: Ticket, change: TicketChange, system: Actor
    ) -> bool:
        st = self.state
        action = "create" if change.created else "update"
        try:
            node = _parse_selector(trigger.get("condition") or {}, system)
            if node is not None and not _TriggerMatcher(st, st.now(), action).matches(node, ticket):
                return False
        except ApiError:
            return False  # a condition the sandbox cannot evaluate (article.*, has changed)
        if change.created or trigger.get("execution_condition_mode") == "always":
            return True
        if change.article_ids:
            return True
        watched = {
            name.split(".", 1)[1] for name in _condition_names(node) if name != "ticket.action"
        }
        return not watched or bool(watched & change.attributes)

    def deliver(
        self, webhook_id: int, trigger: str, ticket: Ticket, article_id: int | None
    ) -> None:
        """Queue the default payload to an active webhook (in the background)."""
        webhook = self.state.db.admin.get("webhooks", {}).get(webhook_id)
        if webhook is None or not cast_bool(webhook.get("active")):
            return
        body = json.dumps(
            webhook_payload(self.state, ticket, article_id),
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        username = str(webhook.get("basic_auth_username") or "")
        self.webhooks.deliver(
            trigger=trigger,
            webhook_id=webhook_id,
            endpoint=str(webhook["endpoint"]),
            body=body,
            signature_token=str(webhook.get("signature_token") or "") or None,
            ssl_verify=bool(cast_bool(webhook.get("ssl_verify")) is not False),
            basic_auth=(username, str(webhook.get("basic_auth_password") or ""))
            if username
            else None,
        )


def webhook_payload(state: SandboxState, ticket: Ticket, article_id: int | None) -> dict[str, Any]:
    """``TriggerWebhookJob::RecordPayload``: the ticket with its associations as nested
    objects, and the article (with attachment URLs and ``accounted_time``) or ``null``."""
    users = state.db.users
    out = ticket_json(state, ticket, mode="names")
    for key in ("owner", "customer", "created_by", "updated_by"):
        user = users.get(out[f"{key}_id"])
        out[key] = user_json(state, user) if user is not None else None
    org = state.db.organizations.get(ticket.organization_id or 0)
    out["organization"] = organization_json(org) if org is not None else None
    out["group"] = group_json(state.db.groups[ticket.group_id])
    out["priority"] = priority_json(state.db.priorities[ticket.priority_id])
    out["state"] = state_json(state, state.db.states[ticket.state_id])
    out["tags"] = list(state.tags_of(ticket.id))
    article = state.db.articles.get(article_id) if article_id is not None else None
    if article is None:
        return {"ticket": out, "article": None}
    rendered = article_json(state, article)
    base = f"https://{state.settings.fqdn}/api/v1/ticket_attachment/{ticket.id}/{article.id}"
    for item in rendered["attachments"]:
        item["url"] = f"{base}/{item['id']}"
    rendered["accounted_time"] = 0.0
    creator = users.get(article.created_by_id)
    rendered["created_by"] = user_json(state, creator) if creator is not None else None
    rendered["created_at"] = iso(article.created_at)
    return {"ticket": out, "article": rendered}


__all__ = [
    "Performer",
    "check_perform",
    "check_selector",
    "validation_failed",
    "webhook_payload",
]
