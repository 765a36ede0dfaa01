"""The osTicket field map: the admin-edited ``mappings/osticket.toml``, validated.

It names the things in osTicket the worker reads and writes: the ticket status agents set to
flag a ticket, the help topic escalation tickets are created under (it sets department, team
and SLA), the variable names of the custom form fields, the statuses for open, parked and
closed, the agent (username or email) who fills each role of the process profile, and limits.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from escalations.profile import Issue, Name, Text, report_issues

_VARIABLE_RE = re.compile(r"[a-z][a-z0-9_]*")
_STANDARD_FIELDS = frozenset({"subject", "message", "priority", "email", "name", "phone", "notes"})
"""Variable names of osTicket's stock Ticket Details and Contact Information forms."""


def _check_variable(value: str) -> str:
    if not _VARIABLE_RE.fullmatch(value) or len(value) > 64:
        raise ValueError(
            f"{value!r} is not an osTicket field variable name (lowercase letters, digits and "
            "'_', starting with a letter, at most 64)"
        )
    if value in _STANDARD_FIELDS:
        raise ValueError(f"{value!r} is a stock osTicket field, not a custom one")
    return value


def _check_agent(value: str) -> str:
    if not value.strip() or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an osTicket agent username or email (no spaces)")
    return value


VariableName = Annotated[str, AfterValidator(_check_variable)]
"""The variable name of an osTicket form field."""
Agent = Annotated[str, AfterValidator(_check_agent)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Flag(_Model):
    """``[flag]``: the open-state ticket status an agent sets to flag a ticket."""

    status: Text


class Topics(_Model):
    """``[topics]``: help topics (exact names)."""

    escalation: Text


class Fields(_Model):
    """``[fields]``: variable names of custom form fields. ``escalation_key``, ``level`` and
    ``original_ticket`` are on the escalation topic's form (the create fills them); the
    others are read from the original ticket (the agent fills them when flagging)."""

    escalation_key: VariableName
    level: VariableName
    original_ticket: VariableName
    reason: VariableName
    segment: VariableName
    callback_at: VariableName
    rfo: VariableName
    route_failed: VariableName | None = None
    """On the escalation topic's form: a checkbox an agent ticks when the carrier route has
    failed (the hand-over to the customer-support supervisor). Unset: no hand-over."""


class Statuses(_Model):
    """``[statuses]``: osTicket ticket status names (exact)."""

    open: Text
    parked: Text
    closed: Text
    confirmed: Text | None = None
    """A closed-state status an agent sets on a parked escalation ticket when the customer
    confirms the outcome (the worker closes it). Unset: an outcome cannot be recorded."""
    not_satisfied: Text | None = None
    """An open-state status an agent sets on a parked escalation ticket when the customer is
    not satisfied (the worker opens it again at the same level)."""


class CarrierNotes(_Model):
    """``[carrier]``: the internal note agents fill in to log a carrier contact."""

    note_heading: Text


class Limits(_Model):
    """``[limits]``: sizes the worker keeps to when copying into osTicket."""

    attachment_max_bytes: int = Field(gt=0)
    article_body_max_chars: int = Field(gt=0)


class OsTicketFieldMap(_Model):
    """The whole of ``osticket.toml``."""

    flag: Flag
    topics: Topics
    fields: Fields
    statuses: Statuses
    people: dict[Name, Agent] = Field(default_factory=dict)
    carrier: CarrierNotes
    limits: Limits

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> OsTicketFieldMap:
        report_issues(
            consistency_issues(flag=self.flag, fields=self.fields, statuses=self.statuses),
            info,
        )
        return self


def consistency_issues(
    *, flag: Flag | None, fields: Fields | None, statuses: Statuses | None
) -> list[Issue]:
    """No two purposes share one field or status; the flag is none of the process statuses.
    Any part may be ``None`` (it failed its own validation)."""
    issues: list[Issue] = []
    for section, model in (("fields", fields), ("statuses", statuses)):
        if model is None:
            continue
        seen: dict[str, str] = {}
        for name in type(model).model_fields:
            value = getattr(model, name)
            if value is None:
                continue
            if value in seen:
                issues.append(
                    ((section, name), f"{value!r} is already used by {section}.{seen[value]}")
                )
            else:
                seen[value] = name
    if flag is not None and statuses is not None:
        for name in type(statuses).model_fields:
            if getattr(statuses, name) == flag.status:  # (an unset one is None)
                issues.append((("flag", "status"), f"{flag.status!r} is also statuses.{name}"))
    return issues
