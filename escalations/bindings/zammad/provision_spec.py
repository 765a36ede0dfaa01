"""``mappings/zammad-provision.toml``, validated: what ``escalations provision`` shows agents
(labels, macro and overview names, text modules) beyond the names ``zammad.toml`` holds."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from escalations.profile import Text

PROVISION_FILE = "zammad-provision.toml"
LEVEL_PLACEHOLDER = "{level}"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class AttributeLook(_Model):
    display: Text
    position: int = Field(ge=0, le=100000)


class Attributes(_Model):
    """One entry per key of ``zammad.toml`` ``[flag] field`` and ``[fields]``."""

    flag: AttributeLook
    level: AttributeLook
    reason: AttributeLook
    segment: AttributeLook
    callback_at: AttributeLook
    rfo: AttributeLook
    escalation_key: AttributeLook
    original_ticket: AttributeLook
    agreed_cadence: AttributeLook | None = None
    next_duty_at: AttributeLook | None = None
    escalated: AttributeLook | None = None
    route_failed: AttributeLook | None = None


class States(_Model):
    parked_note: Text


class Group(_Model):
    note: Text


class Macros(_Model):
    escalate: Text
    level: Text
    route_failed: Text
    resolved: Text
    confirmed: Text
    not_satisfied: Text

    @field_validator("level")
    @classmethod
    def _placeholder(cls, value: str) -> str:
        if LEVEL_PLACEHOLDER not in value:
            raise ValueError(f"the level macro's name must contain {LEVEL_PLACEHOLDER}")
        return value


class Overviews(_Model):
    roles: list[Text] = Field(min_length=1)
    open_by_level: Text
    due_today: Text | None = None
    """Made only with ``zammad.toml [fields] next_duty_at`` mapped (it lists by it)."""
    parked: Text
    confirmations_due: Text


class TextModule(_Model):
    name: Text
    keyword: Text
    content: str | None = None


class TextModules(_Model):
    carrier: TextModule
    rfo: TextModule
    customer_update: TextModule
    call_note: TextModule

    @field_validator("rfo", "customer_update", "call_note")
    @classmethod
    def _has_content(cls, value: TextModule) -> TextModule:
        if not (value.content or "").strip():
            raise ValueError("content: the text agents insert is missing")
        return value

    @field_validator("carrier")
    @classmethod
    def _no_content(cls, value: TextModule) -> TextModule:
        if value.content is not None:
            raise ValueError(
                "content: the carrier-contact text is the parser's template (zammad.toml "
                "[carrier]); it is not given here"
            )
        return value


class Webhook(_Model):
    name: Text
    trigger: Text


class ProvisionSpec(_Model):
    note: Text
    attributes: Attributes
    states: States
    group: Group
    macros: Macros
    overviews: Overviews
    text_modules: TextModules
    webhook: Webhook
