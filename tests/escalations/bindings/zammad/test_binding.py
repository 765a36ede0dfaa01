"""The Zammad binding reading who did what from a ticket's history (issue 10 item 10): the
latest event that raised the flag, set a level or marked the carrier route failed, by the
names ``mappings/zammad.toml`` gives them (the shipped file: flag attribute
``escalation_requested`` and tag ``escalate``, level attribute ``escalation_level``, tag
``carrier-route-failed``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.base import Capability, EventKind, TicketEvent
from escalations.bindings.zammad.binding import ZammadBinding
from escalations.mappings import load_mappings
from escalations.settings import shipped_mappings_dir

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
ALICE, BOB, BOT = 4, 5, 3


def _binding(capabilities: frozenset[Capability] = frozenset(Capability)) -> ZammadBinding:
    mappings = load_mappings(shipped_mappings_dir())
    return ZammadBinding(mappings.helpdesk, mappings.profile, capabilities)


def _field(minute: int, actor: int | None, field: str, value: str) -> TicketEvent:
    return TicketEvent(
        EventKind.FIELD_CHANGED, T0 + timedelta(minutes=minute), actor, field, value_to=value
    )


def _tag(minute: int, actor: int | None, tag: str, kind: EventKind = EventKind.TAG_ADDED):
    return TicketEvent(kind, T0 + timedelta(minutes=minute), actor, value_to=tag)


CREATED = TicketEvent(EventKind.CREATED, T0, 9)


def test_the_latest_flag_wins_by_field_or_tag() -> None:
    binding = _binding()
    events = [
        CREATED,
        _field(1, ALICE, "escalation_requested", "true"),
        _field(2, BOT, "escalation_requested", "false"),  # the flag consumed
        _tag(3, BOT, "escalate", EventKind.TAG_REMOVED),
        _tag(4, BOB, "escalate"),
        _field(5, ALICE, "escalation_reason", "outage_beyond_sla"),
    ]
    assert binding.flag_event(events) == events[4]
    assert binding.flag_event(events[:4]) == events[1]


def test_a_flag_with_no_row_of_its_own_was_set_at_creation() -> None:
    assert _binding().flag_event([CREATED, _field(1, ALICE, "title", "x")]) == CREATED
    assert _binding().flag_event([]) is None


def test_without_tags_a_flag_tag_is_not_a_flag() -> None:
    binding = _binding(frozenset(Capability) - {Capability.TAGS})
    assert binding.flag_event([CREATED, _tag(1, BOB, "escalate")]) == CREATED


@pytest.mark.parametrize("value", ["2", "L2", " 2 "])
def test_the_level_event_is_the_latest_that_set_that_level(value: str) -> None:
    events = [
        _field(1, ALICE, "escalation_level", value),
        _field(2, BOB, "escalation_level", "3"),
        _field(3, BOB, "title", "[ESC L2] x"),
    ]
    assert _binding().level_event(events, 2) == events[0]
    assert _binding().level_event(events, 3) == events[1]
    assert _binding().level_event(events, 4) is None


def test_the_route_failed_event_is_the_tag_added() -> None:
    events = [
        _tag(1, ALICE, "carrier-route-failed"),
        _tag(2, BOT, "carrier-route-failed", EventKind.TAG_REMOVED),
        _tag(3, BOB, "carrier-route-failed"),
        _tag(4, BOT, "escalation-l2"),
    ]
    assert _binding().route_failed_event(events) == events[2]
    assert _binding().route_failed_event(events[1:2]) is None


def test_without_tags_the_route_failed_event_is_the_field_set() -> None:
    mappings = load_mappings(shipped_mappings_dir())
    fields = mappings.helpdesk.fields.model_copy(update={"route_failed": "route_failed_flag"})
    binding = ZammadBinding(
        mappings.helpdesk.model_copy(update={"fields": fields}),
        mappings.profile,
        frozenset(Capability) - {Capability.TAGS},
    )
    events = [
        _field(1, ALICE, "route_failed_flag", "true"),
        _tag(2, BOB, "carrier-route-failed"),
        _field(3, BOB, "route_failed_flag", "false"),
    ]
    assert binding.route_failed_event(events) == events[0]
