"""The provisioning plan (issue 13 #1), pure: what Zammad must hold, from the mappings alone,
and what to do given what it holds — create, update what provision left and the mappings
changed, keep what an admin changed by hand unless forced."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from escalations.bindings.zammad import provision as pv
from escalations.bindings.zammad.fieldmap import ZammadFieldMap
from escalations.bindings.zammad.provision_spec import PROVISION_FILE, ProvisionSpec
from escalations.mappings import Mappings, load_mapping_file, load_mappings
from escalations.settings import shipped_mappings_dir

NOTE = "managed by helpdesk-escalations"
ids = itertools.count(100)


@pytest.fixture
def mappings() -> Mappings:
    return load_mappings(shipped_mappings_dir())


@pytest.fixture
def spec() -> ProvisionSpec:
    return load_mapping_file(shipped_mappings_dir() / PROVISION_FILE, ProvisionSpec)


def zammad_with_defaults() -> pv.Snapshot:
    """What a fresh Zammad has: its seeded states, a Users group, the Agent role."""
    return pv.Snapshot(
        {
            "ticket_states": [
                {"id": 1, "name": "new"},
                {"id": 2, "name": "open"},
                {"id": 4, "name": "closed"},
            ],
            "groups": [{"id": 1, "name": "Users"}],
            "roles": [{"id": 2, "name": "Agent"}],
        }
    )


def everything(mappings: Mappings, spec: ProvisionSpec, snap: pv.Snapshot) -> list[pv.Wanted]:
    fieldmap = mappings.helpdesk
    assert isinstance(fieldmap, ZammadFieldMap)
    return [
        *pv.attributes(fieldmap, mappings.profile, spec),
        *pv.basics(
            fieldmap,
            mappings.profile,
            spec,
            snap,
            webhook_url="https://w.example/hook",
            webhook_secret="s3cret-signing",
        ),
        *pv.macros(fieldmap, mappings.profile, spec, snap),
        *pv.overviews(fieldmap, spec, snap),
        *pv.text_modules(spec, "Carrier contact\nCarrier:"),
        pv.trigger(fieldmap, spec, snap),
    ]


def apply(snap: pv.Snapshot, steps: list[pv.Step]) -> None:
    """What Zammad does with the writes: keeps the body, gives new objects an id."""
    for step in steps:
        if not step.writes:
            continue
        objects = snap.lists.setdefault(step.kind, [])
        if step.object_id is None:
            objects.append({**step.body, "id": next(ids)})
        else:
            (obj,) = [o for o in objects if o["id"] == step.object_id]
            obj.update(step.body)


def provision(
    mappings: Mappings, spec: ProvisionSpec, snap: pv.Snapshot, **kw: Any
) -> list[pv.Step]:
    """Plan and apply phase by phase, as the command does (later phases need earlier ids)."""
    done: list[pv.Step] = []
    for _ in range(3):
        steps = pv.plan(everything(mappings, spec, snap), snap, note=NOTE, **kw)
        apply(snap, steps)
        done = steps
    return done


def test_an_empty_helpdesk_gets_every_object(mappings: Mappings, spec: ProvisionSpec) -> None:
    snap = zammad_with_defaults()
    first = pv.plan(everything(mappings, spec, snap), snap, note=NOTE)
    assert {s.action for s in first} == {pv.Action.CREATE}
    kinds = {s.kind for s in first}
    assert kinds == {
        "object_manager_attributes",
        "ticket_states",
        "groups",
        "tag_list",
        "webhooks",
        "macros",
        "overviews",
        "text_modules",
        "triggers",
    }
    macros = [s.name for s in first if s.kind == "macros"]
    assert macros == [
        "Escalate",
        "Escalation: level 2",
        "Escalation: level 3",
        "Escalation: level 4",
        "Escalation: carrier route failed",
        "Escalation: resolved",
        "Escalation: customer confirmed",
        "Escalation: customer not satisfied",
    ]
    overviews = [s.name for s in first if s.kind == "overviews"]
    assert overviews == [
        "Open escalations by level",
        "Calls and updates due today",
        "Parked escalations",
        "Confirmation calls due",
    ]


def test_attribute_options_come_from_process_toml(mappings: Mappings, spec: ProvisionSpec) -> None:
    fieldmap = mappings.helpdesk
    assert isinstance(fieldmap, ZammadFieldMap)
    wanted = {w.name: w.body for w in pv.attributes(fieldmap, mappings.profile, spec)}
    level = wanted["escalation_level"]["data_option"]["options"]
    assert list(level) == ["1", "2", "3", "4"]
    assert level["2"] == "2 – Escalation Owner (SMC Manager or Duty Manager)"
    assert list(wanted["escalation_reason"]["data_option"]["options"]) == [
        r.key for r in mappings.profile.reasons
    ]
    assert set(wanted["customer_segment"]["data_option"]["options"]) == set(
        mappings.profile.segments
    )
    callback = wanted["escalation_callback_at"]["data_option"]
    assert (callback["future"], callback["past"]) == (True, True)  # Zammad requires both
    for body in wanted.values():  # required on edit would make every ticket update fail
        for screen in body["screens"].values():
            assert not any(role["required"] for role in screen.values())


def test_a_second_run_changes_nothing(mappings: Mappings, spec: ProvisionSpec) -> None:
    snap = zammad_with_defaults()
    provision(mappings, spec, snap)
    again = pv.plan(everything(mappings, spec, snap), snap, note=NOTE)
    assert [s.line() for s in again if s.action is not pv.Action.UNCHANGED] == []


def test_later_objects_name_earlier_ones_by_id(mappings: Mappings, spec: ProvisionSpec) -> None:
    snap = zammad_with_defaults()
    provision(mappings, spec, snap)
    parked = snap.find("ticket_states", "parked")
    group = snap.find("groups", "Escalations")
    assert parked is not None
    assert group is not None
    resolved = snap.find("macros", "Escalation: resolved")
    assert resolved is not None
    assert resolved["perform"] == {"ticket.state_id": {"value": "4"}}
    assert resolved["group_ids"] == [group["id"]]
    due = snap.find("overviews", "Confirmation calls due")
    assert due is not None
    assert due["condition"]["ticket.state_id"]["value"] == [str(parked["id"])]
    assert due["role_ids"] == [2]
    webhook = snap.find("webhooks", "helpdesk-escalations")
    trigger = snap.find("triggers", "helpdesk-escalations: poll now")
    assert webhook is not None
    assert trigger is not None
    assert trigger["perform"] == {"notification.webhook": {"webhook_id": str(webhook["id"])}}


def test_a_macro_changed_by_hand_is_kept_unless_forced(
    mappings: Mappings, spec: ProvisionSpec
) -> None:
    snap = zammad_with_defaults()
    provision(mappings, spec, snap)
    macro = snap.find("macros", "Escalation: customer confirmed")
    assert macro is not None
    macro["perform"] = {"ticket.tags": {"operator": "add", "value": "happy-customer"}}

    (step,) = [s for s in pv.plan(everything(mappings, spec, snap), snap, note=NOTE) if s.diff]
    assert step.action is pv.Action.HAND_EDITED
    assert not step.writes
    assert "happy-customer" in step.line()

    (forced,) = [
        s for s in pv.plan(everything(mappings, spec, snap), snap, note=NOTE, force=True) if s.diff
    ]
    assert forced.action is pv.Action.FORCED
    assert forced.writes


def test_what_provision_left_follows_changed_mappings(
    mappings: Mappings, spec: ProvisionSpec, tmp_path: Path
) -> None:
    snap = zammad_with_defaults()
    provision(mappings, spec, snap)
    text = (shipped_mappings_dir() / "zammad.toml").read_text()
    (tmp_path / "zammad.toml").write_text(
        text.replace('confirmed = "escalation-confirmed"', 'confirmed = "customer-confirmed"')
    )
    (tmp_path / "process.toml").write_text(
        (shipped_mappings_dir() / "process.toml")
        .read_text()
        .replace('label = "Multiple repeat faults"', 'label = "Several repeat faults"')
    )
    changed = load_mappings(tmp_path)
    steps = pv.plan(everything(changed, spec, snap), snap, note=NOTE)
    updates = {(s.kind, s.name): s for s in steps if s.action is pv.Action.UPDATE}
    assert ("macros", "Escalation: customer confirmed") in updates
    assert ("object_manager_attributes", "escalation_reason") in updates  # options follow
    assert [s for s in steps if s.action is pv.Action.HAND_EDITED] == []
    created = [s.name for s in steps if s.action is pv.Action.CREATE]
    assert created == ["customer-confirmed"]  # the new tag


def test_an_attribute_label_changed_by_hand_is_kept(
    mappings: Mappings, spec: ProvisionSpec
) -> None:
    snap = zammad_with_defaults()
    provision(mappings, spec, snap)
    attribute = snap.find("object_manager_attributes", "escalation_level")
    assert attribute is not None
    attribute["display"] = "Level (SMC)"
    (step,) = [s for s in pv.plan(everything(mappings, spec, snap), snap, note=NOTE) if s.diff]
    assert step.action is pv.Action.HAND_EDITED
    assert step.diff == ('display: "Level (SMC)" → "Escalation level"',)


def test_the_signature_token_never_shows_in_a_plan(mappings: Mappings, spec: ProvisionSpec) -> None:
    snap = zammad_with_defaults()
    provision(mappings, spec, snap)
    hook = snap.find("webhooks", "helpdesk-escalations")
    assert hook is not None
    hook["signature_token"] = "an-old-secret-value"
    lines = [s.line() for s in pv.plan(everything(mappings, spec, snap), snap, note=NOTE)]
    assert not any("an-old-secret-value" in line or "s3cret-signing" in line for line in lines)


def test_text_modules_are_lines_of_html() -> None:
    assert pv.as_html("Carrier contact\nStage: <agent>\n\nEnd") == (
        "<div>Carrier contact</div><div>Stage: &lt;agent&gt;</div><div><br></div><div>End</div>"
    )


def test_entries_zammad_adds_to_an_attribute_are_not_a_change(
    mappings: Mappings, spec: ProvisionSpec
) -> None:
    """Zammad's controller fills ``data_option`` in (``relation``, ``nulloption``,
    ``historical_options``) and keeps screens of other roles: the next run is quiet."""
    snap = zammad_with_defaults()
    provision(mappings, spec, snap)
    attribute = snap.find("object_manager_attributes", "escalation_level")
    assert attribute is not None
    attribute["data_option"] = {
        **attribute["data_option"],
        "relation": "",
        "historical_options": dict(attribute["data_option"]["options"]),
    }
    attribute["screens"]["edit"]["admin.user"] = {"shown": False}

    steps = pv.plan(everything(mappings, spec, snap), snap, note=NOTE)

    assert [s for s in steps if s.action is not pv.Action.UNCHANGED] == []


def test_an_option_gone_from_process_toml_is_still_a_change(
    mappings: Mappings, spec: ProvisionSpec
) -> None:
    """Only the top level of ``data_option`` may hold more: a select's options compare whole."""
    snap = zammad_with_defaults()
    provision(mappings, spec, snap)
    attribute = snap.find("object_manager_attributes", "escalation_level")
    assert attribute is not None
    attribute["data_option"]["options"] = {**attribute["data_option"]["options"], "5": "5 – Old"}

    steps = pv.plan(everything(mappings, spec, snap), snap, note=NOTE)

    (step,) = [s for s in steps if s.action is not pv.Action.UNCHANGED]
    assert (step.action, step.name) == (pv.Action.UPDATE, "escalation_level")
