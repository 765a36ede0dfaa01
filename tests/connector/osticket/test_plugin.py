"""``OsTicketAdapter``'s writes through the escalation-api plugin, installed into the real
osTicket 1.18 by the test setup (``real.py``) as an admin would: internal notes once however
often replayed, assignment, the level field and subject, status, the link, JSON errors, and
no mail to the customer."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator

import pytest

from connector.base import (
    ArticleDraft,
    ArticleKind,
    Capability,
    LinkKind,
    Marker,
    Ticket,
    TicketChanges,
)
from connector.clock import SystemClock
from connector.errors import Conflict, Misconfigured, NotFound, Rejected, Unauthorized
from connector.http import HttpPolicy
from connector.osticket import (
    PLUGIN_CAPABILITIES,
    OsTicketAdapter,
    ReadOnlyDatabase,
)
from tests.connector.osticket.real import (
    TOPIC,
    RealOsTicket,
    counting_session,
    escalation_draft,
    unique_customer,
)

pytestmark = pytest.mark.timeout(60)


def _marker() -> Marker:
    return Marker(f"hde1-{secrets.token_hex(8)}")


def _pair(osticket: RealOsTicket, adapter: OsTicketAdapter, sender: str) -> tuple[Ticket, Ticket]:
    """A customer's original ticket and an escalation ticket for it (level 1)."""
    number = osticket.customer_mail(sender, "Line down at the depot", "Down since 9.")
    original = adapter.ticket_by_number(number)
    assert original is not None
    marker = _marker()
    draft = escalation_draft(
        original, marker, title="[L1] Line down at the depot", body="<p>Escalated.</p>"
    )
    created = adapter.create_ticket(draft, marker=marker)
    return original, adapter.get_ticket(created.id)


def _events(osticket: RealOsTicket, ticket_id: int) -> list[str]:
    rows = osticket.admin_sql(
        "SELECT ev.name FROM ost_thread_event e JOIN ost_event ev ON ev.id = e.event_id "
        "JOIN ost_thread th ON th.id = e.thread_id "
        "WHERE th.object_type = 'T' AND th.object_id = %s ORDER BY e.id",
        (ticket_id,),
    )
    return [str(r["name"]) for r in rows]


def test_declares_the_plugins_capabilities_read_from_the_registry_in_one_query(
    osticket: RealOsTicket,
) -> None:
    sent: list[str] = []
    adapter = osticket.adapter(session=counting_session(sent))
    adapter.list_states()  # connected (the connection's own first queries)
    before = adapter.db.queries
    caps = adapter.capabilities
    assert caps >= PLUGIN_CAPABILITIES
    assert {Capability.ADD_NOTE, Capability.UPDATE_TICKET, Capability.LINKS} == PLUGIN_CAPABILITIES
    assert not caps & {Capability.TAGS, Capability.SUBSCRIBE, Capability.HISTORY}
    assert adapter.capabilities == caps  # read once
    assert (adapter.db.queries - before, sent) == (1, [])
    assert adapter.plugin.ping()["bot_agent"] == osticket.env["OSTICKET_STAFF_USER"]


def test_a_note_is_written_exactly_once_however_often_it_is_sent(osticket: RealOsTicket) -> None:
    sent: list[str] = []
    adapter = osticket.adapter(session=counting_session(sent))
    sender = unique_customer()
    original, _ = _pair(osticket, adapter, sender)
    mail = osticket.mail_files()
    marker = _marker()
    draft = ArticleDraft(body="<p>Escalated to level 1.</p>", subject="Escalation raised")
    path = f"POST /api/escalation/tickets/{original.id}/note"

    first = adapter.add_note(original.id, draft, marker=marker)
    again = adapter.add_note(original.id, draft, marker=marker)  # the answer was lost: resent
    # the plugin's record of the request lost too: the note is found by its request id
    osticket.admin_sql(
        "DELETE FROM ost_config WHERE namespace = 'escalation-api.requests' AND `key` = %s",
        (hashlib.sha1(marker.value.encode()).hexdigest(),),  # noqa: S324 - the plugin's key
    )
    third = adapter.add_note(original.id, draft, marker=marker)

    assert first == again == third
    assert sent.count(path) == 3
    notes = [a for a in adapter.list_articles(original.id) if marker.value in a.body]
    assert [(a.id, a.kind, a.internal) for a in notes] == [(first, ArticleKind.NOTE, True)]
    assert "Escalated to level 1." in notes[0].body
    assert notes[0].created_by_id == -1  # the bot agent (the admin agent here)
    assert adapter.find_article_by_marker(original.id, marker) == first
    assert osticket.recipients_since(mail) == []  # no alert, nothing to the customer

    # the same request id for another ticket is a conflict, not a second note
    other, _ = _pair(osticket, adapter, unique_customer())
    with pytest.raises(Conflict, match="request_id was used for note"):
        adapter.add_note(other.id, draft, marker=marker)


def test_assignment_level_and_subject_arrive(osticket: RealOsTicket) -> None:
    adapter = osticket.adapter()
    sender = unique_customer()
    _, esc = _pair(osticket, adapter, sender)
    agent = adapter.find_user(osticket.env["OSTICKET_STAFF_USER"])
    assert agent is not None
    mail = osticket.mail_files()
    changes = TicketChanges(
        owner_id=agent.id,
        group="Level I Support",  # a team
        title="[L2] Line down at the depot",
        fields={"escalation_level": "2"},
    )

    after = adapter.update_ticket(esc.id, changes)
    again = adapter.update_ticket(esc.id, changes)  # a replay changes nothing

    assert after.owner_login == osticket.env["OSTICKET_STAFF_USER"]
    assert after.fields["escalation_level"] == "2"
    assert after.title == "[L2] Line down at the depot"
    (row,) = osticket.admin_sql(
        "SELECT t.team_id, tm.name FROM ost_ticket t JOIN ost_team tm ON tm.team_id = t.team_id "
        "WHERE t.ticket_id = %s",
        (esc.id,),
    )
    assert row["name"] == "Level I Support"
    assert (again.owner_id, again.fields, again.title) == (
        after.owner_id,
        after.fields,
        after.title,
    )
    events = _events(osticket, esc.id)
    assert events.count("assigned") == 2  # the team, the agent: once each, not again
    assert events.count("edited") == 2  # the level field, the subject
    assert sender not in osticket.recipients_since(mail)


def test_status_open_parked_closed_and_back(osticket: RealOsTicket) -> None:
    adapter = osticket.adapter()
    sender = unique_customer()
    original, esc = _pair(osticket, adapter, sender)
    mail = osticket.mail_files()

    assert adapter.update_ticket(esc.id, TicketChanges(state="Closed")).state == "Closed"
    assert adapter.update_ticket(esc.id, TicketChanges(state="Closed")).state == "Closed"
    assert adapter.update_ticket(esc.id, TicketChanges(state="Open")).state == "Open"
    assert adapter.update_ticket(original.id, TicketChanges(state="Resolved")).state == "Resolved"
    assert adapter.update_ticket(esc.id, TicketChanges(state="Parked")).state == "Parked"
    assert adapter.update_ticket(esc.id, TicketChanges(state="Parked")).state == "Parked"
    with pytest.raises(Rejected, match='No ticket status "Snoozed"'):
        adapter.update_ticket(esc.id, TicketChanges(state="Snoozed"))  # not in this osTicket

    events = _events(osticket, esc.id)
    assert events.count("closed") == 1
    assert events.count("reopened") == 1
    assert sender not in osticket.recipients_since(mail)


def test_the_escalation_ticket_is_linked_to_the_original_once(osticket: RealOsTicket) -> None:
    adapter = osticket.adapter()
    original, esc = _pair(osticket, adapter, unique_customer())

    adapter.link_tickets(original.id, esc.id)
    adapter.link_tickets(original.id, esc.id)  # a replay

    assert adapter.list_links(esc.id) == [_link(original.id, LinkKind.PARENT)]
    assert adapter.list_links(original.id) == [_link(esc.id, LinkKind.CHILD)]
    assert _events(osticket, esc.id).count("linked") == 1
    other, _ = _pair(osticket, adapter, unique_customer())
    with pytest.raises(Rejected, match="already linked"):
        adapter.link_tickets(other.id, esc.id)


def _link(ticket_id: int, kind: LinkKind) -> object:
    from connector.base import Link

    return Link(ticket_id, kind)


def test_errors_are_json_and_clear(osticket: RealOsTicket) -> None:
    adapter = osticket.adapter()
    _, esc = _pair(osticket, adapter, unique_customer())
    with pytest.raises(NotFound, match="No ticket with id 999999999"):
        adapter.update_ticket(999999999, TicketChanges(state="Open"))
    with pytest.raises(Rejected, match='no form field with variable name "no_such_field"'):
        adapter.update_ticket(esc.id, TicketChanges(fields={"no_such_field": "1"}))
    with pytest.raises(Rejected, match="No team"):
        adapter.update_ticket(esc.id, TicketChanges(group="No such team"))
    clock = SystemClock()
    bad = OsTicketAdapter(
        osticket.url, "0" * 32, ReadOnlyDatabase(osticket.db_config(), clock),
        HttpPolicy(), clock,
    )  # fmt: skip
    with pytest.raises(Unauthorized, match="Valid API key required"):
        bad.update_ticket(esc.id, TicketChanges(state="Open"))


@pytest.fixture
def other_key(osticket: RealOsTicket) -> Iterator[str]:
    """Another integration's key (a web form's, say): active, bound to the same address, but
    not allowed to create tickets or run cron, and not the plugin instance's."""
    key = secrets.token_hex(16).upper()
    osticket.admin_sql(
        "INSERT INTO ost_api_key (isactive, ipaddr, apikey, can_create_tickets, can_exec_cron, "
        "notes, updated, created) VALUES (1, '127.0.0.1', %s, 0, 0, 'a web form', NOW(), NOW())",
        (key,),
    )
    try:
        yield key
    finally:
        osticket.admin_sql("DELETE FROM ost_api_key WHERE apikey=%s", (key,))


def _adapter_with_key(osticket: RealOsTicket, key: str) -> OsTicketAdapter:
    clock = SystemClock()
    return OsTicketAdapter(
        osticket.url, key, ReadOnlyDatabase(osticket.db_config(), clock), HttpPolicy(), clock
    )


def test_another_active_key_from_the_same_address_gets_no_write_power(
    osticket: RealOsTicket, other_key: str
) -> None:
    """Review of issue 17, defect 1: any active key bound to the caller's address could close,
    assign, edit or link as the bot agent, even one osTicket refuses for creating tickets."""
    adapter = osticket.adapter()
    _, esc = _pair(osticket, adapter, unique_customer())
    other = _adapter_with_key(osticket, other_key)

    with pytest.raises(Unauthorized, match="not the Worker API key") as refused:
        other.update_ticket(esc.id, TicketChanges(state="Closed"))
    assert not isinstance(refused.value, Misconfigured)  # a refused key, not a setup error
    with pytest.raises(Unauthorized, match="not the Worker API key"):
        other.plugin.ping()
    assert adapter.get_ticket(esc.id).state == "Open"
    assert "closed" not in _events(osticket, esc.id)


def test_ping_reports_whether_the_key_creates_tickets_and_the_bot_agents_permissions(
    osticket: RealOsTicket,
) -> None:
    adapter = osticket.adapter()
    answer = adapter.plugin.ping()
    assert answer["can_create_tickets"] is True
    (topic,) = osticket.admin_sql("SELECT dept_id FROM ost_help_topic WHERE topic=%s", (TOPIC,))
    assert answer["bot_departments"][str(topic["dept_id"])] == ["assign", "edit", "close", "link"]
    osticket.admin_sql(
        "UPDATE ost_api_key SET can_create_tickets=0 WHERE apikey=%s", (osticket.api_key,)
    )
    try:
        assert adapter.plugin.ping()["can_create_tickets"] is False
    finally:
        osticket.admin_sql(
            "UPDATE ost_api_key SET can_create_tickets=1 WHERE apikey=%s", (osticket.api_key,)
        )


def test_an_inactive_bot_agent_is_a_configuration_error_at_once_not_retried(
    osticket: RealOsTicket,
) -> None:
    """Review of issue 17, defect 7: a 503, retried for about 5 s and then up to 10 times."""
    adapter = osticket.adapter()
    _, esc = _pair(osticket, adapter, unique_customer())
    user = osticket.env["OSTICKET_STAFF_USER"]
    osticket.admin_sql("UPDATE ost_staff SET isactive=0 WHERE username=%s", (user,))
    try:
        start = time.monotonic()
        with pytest.raises(Misconfigured, match=f'bot agent "{user}" is not an active agent'):
            adapter.update_ticket(esc.id, TicketChanges(state="Closed"))
        assert time.monotonic() - start < 2
        with pytest.raises(Misconfigured, match="Instances: Bot agent an active agent"):
            adapter.plugin.ping()
    finally:
        osticket.admin_sql("UPDATE ost_staff SET isactive=1 WHERE username=%s", (user,))


def test_a_plugin_disabled_after_the_start_fails_the_write_naming_it(
    osticket: RealOsTicket,
) -> None:
    adapter = osticket.adapter()
    _, esc = _pair(osticket, adapter, unique_customer())
    assert Capability.UPDATE_TICKET in adapter.capabilities
    osticket.set_plugin_enabled(False)
    try:
        with pytest.raises(Rejected, match="escalation-api plugin was disabled"):
            adapter.update_ticket(esc.id, TicketChanges(state="Closed"))
        assert osticket.adapter().capabilities.isdisjoint(PLUGIN_CAPABILITIES)
    finally:
        osticket.set_plugin_enabled(True)
    assert adapter.get_ticket(esc.id).state == "Open"


def test_the_plugins_php_lints() -> None:
    """``php -l`` on every file of the plugin (CI has PHP: ``shared/osticket/up`` installs it)."""
    import os
    import shutil
    import subprocess

    from tests.connector.osticket.real import PLUGIN_SOURCE

    php = shutil.which("php")
    if php is None:
        if os.environ.get("CI") == "true":
            pytest.fail("php is missing; shared/osticket/up installs php-cli", pytrace=False)
        pytest.skip("php is not installed")
    files = sorted(PLUGIN_SOURCE.glob("*.php"))
    assert [f.name for f in files] == [
        "config.php", "controller.php", "escalation-api.php", "plugin.php",
    ]  # fmt: skip
    for path in files:
        lint = subprocess.run(
            [php, "-l", str(path)], capture_output=True, text=True, timeout=30, check=False
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_a_ping_answered_with_an_html_page_is_one_clear_error() -> None:
    """Review of issue 17, defect 2: a proxy's or a login page's 200 gave ``check --live`` and
    ``provision`` a JSONDecodeError traceback."""
    import responses

    from connector.errors import HelpdeskError
    from connector.http import HttpClient
    from connector.osticket._plugin import PluginClient

    url = "http://127.0.0.1:9"
    client = HttpClient(url, {"X-API-Key": "k"}, HttpPolicy(), SystemClock())
    with responses.RequestsMock() as mock:
        mock.get(f"{url}/api/escalation/ping", body="<html>Sign in</html>", status=200)
        with pytest.raises(HelpdeskError, match="the plugin answered no JSON") as caught:
            PluginClient(client).ping()
    assert type(caught.value) is HelpdeskError


def test_a_plugin_set_up_wrong_is_told_from_a_refused_key() -> None:
    import responses

    from connector.http import HttpClient
    from connector.osticket._plugin import PluginClient

    url = "http://127.0.0.1:9"
    client = HttpClient(url, {"X-API-Key": "k"}, HttpPolicy(), SystemClock())
    plugin = PluginClient(client)
    with responses.RequestsMock() as mock:
        body = {"ok": False, "code": "not_configured", "error": "escalation-api: no bot agent"}
        mock.post(f"{url}/api/escalation/tickets/7/status", json=body, status=401)
        with pytest.raises(Misconfigured, match="no bot agent: fix the plugin instance"):
            plugin.status(7, "Closed")
        body = {"ok": False, "code": "api_key", "error": "Valid API key required"}
        mock.get(f"{url}/api/escalation/ping", json=body, status=401)
        with pytest.raises(Unauthorized, match="Valid API key required") as caught:
            plugin.ping()
    assert not isinstance(caught.value, Misconfigured)
