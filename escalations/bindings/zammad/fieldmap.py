"""The Zammad field map: the admin-edited ``mappings/zammad.toml``, validated.

It names the things in Zammad that the worker reads and writes: the flag agents set, the
custom ticket attributes, tags, group, states, the placeholder customer, the helpdesk user who
fills each role of the process profile, and a few limits. Names are checked against Zammad's
own rules (see ``shared/reference/zammad-api.md`` §10 for attribute names and §2.11 for tags),
because Zammad drops unknown fields silently and skips bad tags silently.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from connector.zammad import STANDARD_TICKET_KEYS
from escalations.profile import Issue, Name, TagName, Text, report_issues

# Zammad protocol facts (not business numbers): article body limit and attribute-name rules,
# from app/models/ticket/article.rb and object_manager/attribute.rb#check_name.
ZAMMAD_ARTICLE_BODY_MAX_CHARS = 1_500_000
LEVEL_PLACEHOLDER = "{level}"
_ATTRIBUTE_RE = re.compile(r"[a-z0-9_]+")
_RESERVED_WORDS = (
    "destroy true false integer select drop create alter index table varchar blob date "
    "datetime timestamp url icon initials avatar permission validate subscribe unsubscribe "
    "translate search _type _doc _id id action scope constructor article"
)
_RESERVED_ATTRIBUTE_NAMES = frozenset(_RESERVED_WORDS.split())
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _check_attribute(value: str) -> str:
    if not _ATTRIBUTE_RE.fullmatch(value) or not re.search(r"[a-z]", value):
        raise ValueError(
            f"{value!r} is not a Zammad attribute name (lowercase letters, digits and '_', "
            "with at least one letter)"
        )
    if value.endswith(("_id", "_ids")):
        raise ValueError(f"{value!r}: Zammad forbids attribute names ending in _id or _ids")
    if value in _RESERVED_ATTRIBUTE_NAMES:
        raise ValueError(f"{value!r} is a reserved word in Zammad")
    if value in STANDARD_TICKET_KEYS:
        # the worker would write its own values over the ticket's (e.g. its owner) and read
        # Zammad's column back as if it were the custom field
        raise ValueError(
            f"{value!r} is a standard Zammad ticket attribute, not a custom one "
            "(name the custom attribute created for this purpose)"
        )
    return value


def _check_level_tag(value: str) -> str:
    if LEVEL_PLACEHOLDER not in value:
        raise ValueError(f"the level tag template must contain {LEVEL_PLACEHOLDER}")
    rest = value.replace(LEVEL_PLACEHOLDER, "")
    if "{" in rest or "}" in rest:
        raise ValueError(f"only the placeholder {LEVEL_PLACEHOLDER} may use braces")
    return value


def _check_login(value: str) -> str:
    if not value.strip() or value != value.strip() or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a helpdesk login or email (no spaces allowed)")
    return value


def _check_placeholder(value: str) -> str:
    if value and not _EMAIL_RE.fullmatch(value):
        raise ValueError(f'{value!r} is not an email address (or "" for the real customer)')
    return value


def _check_single_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must be a single line")
    return value


AttributeName = Annotated[str, AfterValidator(_check_attribute)]
"""A Zammad custom ticket attribute name."""
Login = Annotated[str, AfterValidator(_check_login)]
"""A helpdesk user's login or email address."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Flag(_Model):
    """``[flag]``: how an agent flags a ticket for escalation (a field, a tag, or both)."""

    field: AttributeName | None = None
    tag: TagName | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Flag:
        if self.field is None and self.tag is None:
            raise ValueError("set field, tag or both: an escalation must be flaggable")
        return self


class Fields(_Model):
    """``[fields]``: custom ticket attributes (Zammad object manager attribute names)."""

    level: AttributeName
    reason: AttributeName
    segment: AttributeName
    callback_at: AttributeName
    rfo: AttributeName
    escalation_key: AttributeName
    original_ticket: AttributeName
    escalated: AttributeName | None = None
    """Boolean marking an original as escalated, where the helpdesk has no tags."""
    route_failed: AttributeName | None = None
    """Boolean an agent sets when the carrier route failed, where the helpdesk has no tags."""
    agreed_cadence: AttributeName | None = None
    """Integer: the update cadence in minutes agreed with the customer when escalating."""
    next_duty_at: AttributeName | None = None
    """Datetime the worker keeps on the escalation ticket: when the next call or update of the
    communication plan is due (the "Calls and updates due today" overview lists by it)."""


class Tags(_Model):
    """``[tags]``: tags the worker sets, and the two an agent sets to record the confirmation."""

    escalated: TagName
    level: Annotated[TagName, AfterValidator(_check_level_tag)]
    escalation: TagName
    parked: TagName
    confirmed: TagName
    carrier_route_failed: TagName
    not_satisfied: TagName = "escalation-not-satisfied"


class Groups(_Model):
    """``[groups]``: Zammad groups (exact names; nested groups as ``Parent::Child``)."""

    escalation: Text


class States(_Model):
    """``[states]``: Zammad ticket state names (exact, case-sensitive)."""

    open: Text
    parked: Text
    closed: Text


class Customer(_Model):
    """``[customer]``: whom escalation tickets are created for."""

    placeholder: Annotated[str, AfterValidator(_check_placeholder)]


class CarrierNotes(_Model):
    """``[carrier]``: the internal note agents fill in to log a carrier contact."""

    note_heading: Annotated[Text, AfterValidator(_check_single_line)]


class Limits(_Model):
    """``[limits]``: sizes the worker keeps to when copying into Zammad."""

    attachment_max_bytes: int = Field(gt=0)
    article_body_max_chars: int = Field(gt=0, le=ZAMMAD_ARTICLE_BODY_MAX_CHARS)


class ZammadFieldMap(_Model):
    """The whole of ``zammad.toml``."""

    flag: Flag
    fields: Fields
    tags: Tags
    groups: Groups
    states: States
    customer: Customer
    people: dict[Name, Login] = Field(default_factory=dict)
    carrier: CarrierNotes
    limits: Limits

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> ZammadFieldMap:
        issues = consistency_issues(
            flag=self.flag, fields=self.fields, tags=self.tags, states=self.states
        )
        report_issues(issues, info)
        return self

    def level_tag(self, level: int) -> str:
        """The tag for an escalation level, e.g. ``escalation-l2``."""
        return self.tags.level.replace(LEVEL_PLACEHOLDER, str(level))

    def escalation_tags(self, level: int) -> frozenset[str]:
        """The tags an escalation ticket at this level carries (without parked/confirmed)."""
        return frozenset({self.tags.escalation, self.level_tag(level)})

    def person(self, role: str) -> str:
        """The helpdesk user (login or email) who fills a role. Raises ``KeyError``."""
        try:
            return self.people[role]
        except KeyError:
            raise KeyError(f"no helpdesk user is mapped to role {role!r}") from None

    @property
    def uses_placeholder_customer(self) -> bool:
        """True if escalation tickets are created for the internal placeholder customer."""
        return bool(self.customer.placeholder)


def consistency_issues(
    *, flag: Flag | None, fields: Fields | None, tags: Tags | None, states: States | None
) -> list[Issue]:
    """Checks across the field map: no two purposes share one attribute, tag or state.

    Any part may be None (it failed its own validation); checks that need it are skipped.
    """
    issues: list[Issue] = []
    if flag is not None and flag.field is not None and fields is not None:
        for name in type(fields).model_fields:
            if getattr(fields, name) == flag.field:
                issues.append((("flag", "field"), f"{flag.field!r} is also used by fields.{name}"))
    if flag is not None and flag.tag is not None and tags is not None:
        for name in type(tags).model_fields:
            if getattr(tags, name) == flag.tag:
                issues.append((("flag", "tag"), f"{flag.tag!r} is also used by tags.{name}"))
    for section, model in (("fields", fields), ("tags", tags), ("states", states)):
        if model is None:
            continue
        seen: dict[str, str] = {}
        for name in type(model).model_fields:
            value = getattr(model, name)
            if value is None:
                continue
            if value in seen:
                issues.append(
                    (
                        (section, name),
                        f"{value!r} is already used by {section}.{seen[value]}",
                    )
                )
            else:
                seen[value] = name
    return issues
