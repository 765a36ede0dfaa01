"""``escalations check --live`` (escalations/livecheck.py): the real Zammad adapter against the
demo sandbox through ``responses``. The shipped mappings match the demo exactly; each test
takes one thing away and expects one clear line naming the mapping key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from connector.http import HttpClient, HttpPolicy
from connector.zammad import ZammadAdapter
from escalations.bindings.zammad.livecheck import live_check
from escalations.clock import FakeClock
from escalations.mappings import Mappings, load_mappings
from escalations.settings import shipped_mappings_dir
from sandbox import ZammadSandbox, mount
from sandbox.core import DEMO_SEED
from tests.conftest import edited_mappings

BASE_URL = "https://zammad.test"
BOT = "escalation-bot"
ADMIN = "admin@fused.example"
LLOYD = "lloyd.foley@jt.example"
WHERE = f"{shipped_mappings_dir() / 'zammad.toml'}"


@pytest.fixture
def mappings() -> Mappings:
    return load_mappings(shipped_mappings_dir())


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def sandbox(rsps: responses.RequestsMock, clock: FakeClock) -> ZammadSandbox:
    sb = ZammadSandbox.demo(clock=clock)
    mount(sb, rsps, BASE_URL)
    return sb


def adapter_for(token: str, clock: FakeClock) -> ZammadAdapter:
    policy = HttpPolicy(requests_per_minute=6000, burst=1000, max_attempts=1)
    client = HttpClient(BASE_URL, {"Authorization": f"Token token={token}"}, policy, clock)
    return ZammadAdapter(client, clock=clock)


def check(sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock, login: str = BOT) -> list:
    return live_check(adapter_for(sandbox.token_of(login), clock), mappings)


def remove_attribute(sandbox: ZammadSandbox, name: str) -> None:
    """The attribute is deleted and its migration has run: the column is gone."""
    with sandbox.lock:
        attributes = sandbox.state.db.attributes
        (attr_id,) = [i for i, a in attributes.items() if a.object == "Ticket" and a.name == name]
        del attributes[attr_id]


# -- the shipped mappings match the demo ------------------------------------------------------


@pytest.mark.parametrize("login", [BOT, ADMIN])
def test_shipped_mappings_pass_against_the_demo(
    sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock, login: str
) -> None:
    assert check(sandbox, mappings, clock, login) == []


def test_only_reads(sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock) -> None:
    check(sandbox, mappings, clock)
    methods = {method for method, _, _ in sandbox.requests}
    assert methods == {"GET"}


# -- fields -----------------------------------------------------------------------------------


@pytest.mark.parametrize("login", [BOT, ADMIN], ids=["bot-token-reads-a-ticket", "admin-token"])
def test_a_missing_field(
    sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock, login: str
) -> None:
    remove_attribute(sandbox, "escalation_rfo")
    assert check(sandbox, mappings, clock, login) == [
        f"{WHERE}: fields.rfo: ticket attribute 'escalation_rfo' not found"
    ]


def test_a_missing_flag_field(sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock) -> None:
    remove_attribute(sandbox, "escalation_requested")
    assert check(sandbox, mappings, clock) == [
        f"{WHERE}: flag.field: ticket attribute 'escalation_requested' not found"
    ]


def test_a_missing_select_option_needs_the_object_manager(
    sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock
) -> None:
    with sandbox.lock:
        (level,) = [a for a in sandbox.state.db.attributes.values() if a.name == "escalation_level"]
        del level.data_option["options"]["4"]
    assert check(sandbox, mappings, clock, ADMIN) == [
        f"{WHERE}: fields: attribute 'escalation_level' lacks option(s) 4"
    ]
    # The bot's token learns attribute names only, so options go unchecked.
    assert check(sandbox, mappings, clock, BOT) == []


# -- people -----------------------------------------------------------------------------------


def test_a_deactivated_person(sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock) -> None:
    with sandbox.lock:
        sandbox.user_record(LLOYD).active = False
    assert check(sandbox, mappings, clock) == [
        f"{WHERE}: people.head_of_service_management: user '{LLOYD}' is inactive"
    ]


def test_a_removed_person(
    mappings: Mappings, clock: FakeClock, rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    seed = json.loads(Path(DEMO_SEED).read_text(encoding="utf-8"))
    seed["users"] = [u for u in seed["users"] if u["login"] != LLOYD]
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed), encoding="utf-8")
    sandbox = ZammadSandbox.from_seed(path, clock=clock)
    mount(sandbox, rsps, BASE_URL)
    assert check(sandbox, mappings, clock) == [
        f"{WHERE}: people.head_of_service_management: user '{LLOYD}' not found"
    ]


def test_an_owner_without_full_access(
    sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock
) -> None:
    with sandbox.lock:
        user = sandbox.user_record("duty.manager@fused.example")
        user.group_access[sandbox.group_id("Escalations")] = ["read"]
    assert check(sandbox, mappings, clock) == [
        f"{WHERE}: people.duty_manager: user 'duty.manager@fused.example' needs full access "
        "to group 'Escalations' to own escalation tickets"
    ]


# -- the worker's own access ------------------------------------------------------------------


def test_the_bot_without_access_to_the_escalation_group(
    sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock
) -> None:
    with sandbox.lock:
        sandbox.user_record(BOT).group_access.pop(sandbox.group_id("Escalations"))
    assert check(sandbox, mappings, clock) == [
        f"{WHERE}: groups.escalation: the worker's user '{BOT}' lacks change, create, read "
        "access to group 'Escalations'"
    ]


def test_the_bot_with_read_access_only(
    sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock
) -> None:
    with sandbox.lock:
        sandbox.user_record(BOT).group_access[sandbox.group_id("Escalations")] = ["read"]
    assert check(sandbox, mappings, clock) == [
        f"{WHERE}: groups.escalation: the worker's user '{BOT}' lacks change, create access "
        "to group 'Escalations'"
    ]


def test_a_wrong_token_is_one_line(
    sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock
) -> None:
    adapter = adapter_for("not-the-token", clock)
    assert live_check(adapter, mappings) == [
        "the token was refused (401): check ESCALATIONS_HELPDESK_TOKEN"
    ]


# -- tags, states -----------------------------------------------------------------------------


def test_a_missing_tag(sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock) -> None:
    with sandbox.lock:
        del sandbox.state.db.tag_items["escalation-parked"]
    assert check(sandbox, mappings, clock) == [
        f"{WHERE}: tags.parked: tag 'escalation-parked' not found "
        "(escalations provision creates it)"
    ]


def test_a_missing_level_tag(sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock) -> None:
    with sandbox.lock:
        del sandbox.state.db.tag_items["escalation-l3"]
    assert check(sandbox, mappings, clock) == [
        f"{WHERE}: tags.level (3): tag 'escalation-l3' not found (escalations provision creates it)"
    ]


def test_a_missing_state(sandbox: ZammadSandbox, mappings: Mappings, clock: FakeClock) -> None:
    with sandbox.lock:
        sandbox.state.state_by_name("parked").active = False
    assert check(sandbox, mappings, clock) == [f"{WHERE}: states.parked: state 'parked' not found"]


# -- the caller log ---------------------------------------------------------------------------


def _caller_log_on(tmp_path: Path) -> Mappings:
    return edited_mappings(
        tmp_path, "process.toml", "\ncaller_log = false\n", "\ncaller_log = true\n"
    )


def test_the_caller_log_switch_needs_a_token_that_may_read_it(
    sandbox: ZammadSandbox, clock: FakeClock, tmp_path: Path
) -> None:
    mappings = _caller_log_on(tmp_path)
    assert mappings.profile.comms.caller_log
    assert check(sandbox, mappings, clock) == [
        f"{tmp_path / 'mappings' / 'process.toml'}: comms.caller_log: the worker's token "
        "(user 'escalation-bot') may not read the caller log (it needs the cti.agent permission)"
    ]
    sandbox.grant_token(sandbox.token_of(BOT), "cti.agent")
    assert check(sandbox, mappings, clock) == []


def _note_on(tmp_path: Path, ticket_id: int) -> Mappings:
    return edited_mappings(
        tmp_path, "process.toml", 'at = "06:00"', f'at = "06:00"\nnote_on_ticket = {ticket_id}'
    )


def test_the_report_note_ticket_must_exist_and_take_the_workers_notes(
    sandbox: ZammadSandbox, clock: FakeClock, tmp_path: Path
) -> None:
    where = f"{tmp_path / 'mappings' / 'process.toml'}: report.note_on_ticket"
    assert check(sandbox, _note_on(tmp_path, 99999), clock) == [f"{where}: ticket 99999 not found"]
    support = next(i for i, t in sandbox.tickets.items() if t["group"] == "Support")
    assert check(sandbox, _note_on(tmp_path / "b", support), clock) == []
    managers = sandbox.add_group("Managers")
    ticket = sandbox.create_ticket_as_customer(
        "sean.walsh@residential.example", "Nightly reports", "Reports go here.", group="Managers"
    )
    assert check(sandbox, _note_on(tmp_path / "c", ticket), clock) == [
        f"{tmp_path / 'c' / 'mappings' / 'process.toml'}: report.note_on_ticket: the worker's "
        f"user 'escalation-bot' may not read ticket {ticket}"
    ]
    sandbox.user_record("escalation-bot").group_access[managers] = ["read"]
    number = sandbox.ticket(ticket)["number"]
    assert check(sandbox, _note_on(tmp_path / "d", ticket), clock) == [
        f"{tmp_path / 'd' / 'mappings' / 'process.toml'}: report.note_on_ticket: the worker's "
        f"user 'escalation-bot' lacks change, create access to group 'Managers' of ticket "
        f"#{number} (a note needs change access, and create on Zammad 6.5)"
    ]
