"""``OsTicketAdapter`` against the real osTicket 1.18 (``real.py``): reads through the
read-only account, the create through ``tickets.json``, copies through ``tickets.email``."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from connector.base import (
    ArticleDraft,
    ArticleKind,
    AttachmentUpload,
    Capability,
    HelpdeskAdapter,
    Marker,
    Sender,
    TicketChanges,
    TicketDraft,
)
from connector.clock import SystemClock
from connector.errors import (
    Misconfigured,
    Rejected,
    SetupError,
    TooLarge,
    TransientError,
    Unauthorized,
)
from connector.http import HttpPolicy
from connector.osticket import (
    DatabaseConfig,
    OsTicketAdapter,
    ReadOnlyDatabase,
    Unsupported,
    message_id,
)
from tests.connector.osticket.real import (
    TOPIC,
    RealOsTicket,
    counting_session,
    escalation_draft,
    unique_customer,
)

pytestmark = pytest.mark.timeout(60)


def _marker(n: int) -> Marker:
    return Marker(f"hde1-{n:016x}")


def _unique_marker() -> Marker:
    return Marker(f"hde1-{secrets.token_hex(8)}")


def _original(osticket: RealOsTicket, sender: str, attachment: bytes = b"") -> str:
    files = (("router-log.txt", attachment),) if attachment else ()
    return osticket.customer_mail(
        sender, "Line down at the depot", "Our line has been down since 9.", attachments=files
    )


def test_is_a_helpdesk_adapter_declaring_only_what_core_osticket_can(
    without_plugin: RealOsTicket,
) -> None:
    adapter = without_plugin.adapter()
    assert isinstance(adapter, HelpdeskAdapter)
    assert Capability.ADD_NOTE not in adapter.capabilities
    assert Capability.UPDATE_TICKET not in adapter.capabilities
    assert Capability.TAGS not in adapter.capabilities
    assert {Capability.POLL_CHANGES, Capability.CREATE_TICKET} <= adapter.capabilities


def test_reads_a_customer_mail_with_headers_and_attachment_bytes(osticket: RealOsTicket) -> None:
    adapter = osticket.adapter()
    sender = unique_customer()
    data = b"link down 09:00\n" * 40_000  # 640 kB: two chunks of ost_file_chunk
    number = _original(osticket, sender, data)

    ticket = adapter.ticket_by_number(number)
    assert ticket is not None
    assert ticket.title == "Line down at the depot"
    assert ticket.customer_login == sender
    assert ticket.state == "Open"
    assert ticket.updated_at.tzinfo is UTC
    (article,) = adapter.list_articles(ticket.id)
    assert article.sender is Sender.CUSTOMER
    assert article.kind is ArticleKind.EMAIL
    assert article.is_customer_message
    assert article.from_ is not None
    assert sender in article.from_
    assert article.to == "support@helpdesk.example"
    assert "down since 9" in article.body
    (ref,) = article.attachments
    assert ref.filename == "router-log.txt"
    assert ref.size == len(data)
    assert adapter.fetch_attachment(ref, max_bytes=len(data)) == data
    assert adapter.digest_attachment(ref) == (len(data), hashlib.sha256(data).hexdigest())
    with pytest.raises(TooLarge):
        adapter.fetch_attachment(ref, max_bytes=len(data) - 1)
    assert adapter.get_user(ticket.customer_id).email == sender
    assert adapter.find_user(sender) == adapter.get_user(ticket.customer_id)


def test_changed_tickets_by_watermark_and_an_idle_poll_is_one_query(
    osticket: RealOsTicket,
) -> None:
    requests_sent: list[str] = []
    adapter = osticket.adapter(session=counting_session(requests_sent))
    before = datetime.now(UTC) - timedelta(seconds=2)
    number = _original(osticket, unique_customer())
    assert number in [t.number for t in adapter.changed_tickets(before)]

    later = datetime.now(UTC) + timedelta(hours=1)
    queries = adapter.db.queries
    assert list(adapter.changed_tickets(later)) == []
    assert adapter.db.queries - queries == 1
    assert requests_sent == []


def test_creates_the_escalation_ticket_and_reads_it_back(osticket: RealOsTicket) -> None:
    adapter = osticket.adapter()
    sender = unique_customer()
    original = adapter.ticket_by_number(_original(osticket, sender))
    assert original is not None
    marker = _unique_marker()
    mail = osticket.mail_files()
    plan = AttachmentUpload("plan.txt", "text/plain", b"call at 14.00")
    draft = escalation_draft(original, marker, attachments=(plan,))
    created = adapter.create_ticket(draft, marker=marker)

    ticket = adapter.get_ticket(created.id)
    assert ticket.number == created.number
    assert ticket.group == "Maintenance"  # the help topic's department
    assert ticket.customer_id == original.customer_id
    assert ticket.fields["escalation_key"] == marker.value
    assert ticket.fields["origin_ticket"] == original.number
    (first,) = adapter.list_articles(created.id)
    assert marker.value in first.body
    assert [a.filename for a in first.attachments] == ["plan.txt"]
    since = datetime.now(UTC) - timedelta(minutes=5)
    assert adapter.find_ticket_by_marker(marker, linked_to=original.id, since=since) == created.id
    assert adapter.find_ticket_by_marker(_unique_marker(), linked_to=original.id) is None
    assert sender not in osticket.recipients_since(mail)


def test_validation_errors_arrive_as_500_and_are_rejected_with_osticket_words(
    osticket: RealOsTicket,
) -> None:
    adapter = osticket.adapter()
    original = adapter.ticket_by_number(_original(osticket, unique_customer()))
    assert original is not None
    draft = TicketDraft(
        title="", group=TOPIC, customer_id=original.customer_id,
        first_note=ArticleDraft(body="<p>x</p>"),
    )  # fmt: skip
    with pytest.raises(Rejected, match="Issue Summary is a required field"):
        adapter.create_ticket(draft, marker=_unique_marker())
    with pytest.raises(Rejected, match="no help topic"):
        adapter.create_ticket(
            TicketDraft(
                title="x",
                group="No such topic",
                customer_id=original.customer_id,
                first_note=ArticleDraft(body="x"),
            ),  # fmt: skip
            marker=_unique_marker(),
        )


def test_a_copy_is_mailed_in_once_whatever_the_replays(osticket: RealOsTicket) -> None:
    requests_sent: list[str] = []
    adapter = osticket.adapter(session=counting_session(requests_sent))
    sender = unique_customer()
    ticket = adapter.ticket_by_number(_original(osticket, sender))
    assert ticket is not None
    marker = _unique_marker()
    mail = osticket.mail_files()
    draft = ArticleDraft(
        body="<p>From: the customer</p><p>Still down.</p>",
        subject="Customer email: Still down",
        attachments=(AttachmentUpload("trace.txt", "text/plain", b"no carrier"),),
    )
    first = adapter.add_article(ticket.id, draft, marker=marker)
    again = adapter.add_article(ticket.id, draft, marker=marker)  # a replay after a crash

    assert osticket.recipients_since(mail) == []  # an automatic message: no alert, no reply
    assert first == again
    assert requests_sent.count("POST /api/tickets.email") == 2
    entries = [a for a in adapter.list_articles(ticket.id) if marker.value in a.body]
    assert [a.id for a in entries] == [first]
    assert [f.filename for f in entries[0].attachments] == ["trace.txt"]
    assert adapter.find_article_by_marker(ticket.id, marker) == first
    assert osticket.admin_sql(
        "SELECT COUNT(*) AS n FROM ost_thread_entry_email WHERE mid=%s", (message_id(marker),)
    ) == [{"n": 1}]
    assert sender not in osticket.recipients_since(mail)


def test_a_copy_goes_through_the_http_client_like_every_other_call(
    osticket: RealOsTicket, caplog: pytest.LogCaptureFixture
) -> None:
    """Review of issue 17, defect 6: ``tickets.email`` was posted on the raw session, so a
    copy had no request budget, no ``http.response`` line and no request id."""
    adapter = osticket.adapter()
    ticket = adapter.ticket_by_number(_original(osticket, unique_customer()))
    assert ticket is not None
    taken: list[int] = []
    bucket = adapter.http._bucket  # noqa: SLF001 - the client's request budget
    acquire = bucket.acquire

    def counted() -> None:
        taken.append(1)
        acquire()

    bucket.acquire = counted  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG, logger="connector.http")
    adapter.add_article(ticket.id, ArticleDraft(body="<p>Still down.</p>"), marker=_unique_marker())
    assert "http.response method=POST path=/api/tickets.email status=201" in caplog.text
    assert taken == [1]  # the copy took its token of the budget


def test_what_core_osticket_cannot_do_says_so(without_plugin: RealOsTicket) -> None:
    adapter = without_plugin.adapter()
    with pytest.raises(Unsupported, match="escalation-api plugin"):
        adapter.link_tickets(1, 2)
    with pytest.raises(Unsupported, match="escalation-api plugin"):
        adapter.update_ticket(1, TicketChanges())
    with pytest.raises(Unsupported, match="escalation-api plugin"):
        adapter.add_note(1, ArticleDraft(body="x"), marker=_marker(1))
    assert adapter.get_tags(1) == frozenset()


def test_a_wrong_key_is_unauthorized(osticket: RealOsTicket) -> None:
    good = osticket.adapter()
    original = good.ticket_by_number(_original(osticket, unique_customer()))
    assert original is not None
    policy = HttpPolicy()
    clock = SystemClock()
    bad = OsTicketAdapter(
        osticket.url, "0" * 32, ReadOnlyDatabase(osticket.db_config(), clock), policy, clock
    )
    draft = TicketDraft(
        title="x", group=TOPIC, customer_id=original.customer_id,
        first_note=ArticleDraft(body="x"),
    )  # fmt: skip
    with pytest.raises(Unauthorized):
        bad.create_ticket(draft, marker=_marker(1))


def test_localhost_is_refused_for_the_key_is_bound_to_one_ip(osticket: RealOsTicket) -> None:
    clock = SystemClock()
    with pytest.raises(SetupError, match="::1"):
        OsTicketAdapter(
            "http://localhost:8081", "k", ReadOnlyDatabase(osticket.db_config(), clock),
            HttpPolicy(), clock,
        )  # fmt: skip


def test_the_database_account_runs_select_only(osticket: RealOsTicket) -> None:
    db = osticket.adapter().db
    with pytest.raises(ValueError, match="SELECT"):
        db.select("UPDATE {t:ticket} SET number = 'x'")


def test_the_mail_capture_is_live_so_the_no_customer_mail_checks_can_fail(
    osticket: RealOsTicket,
) -> None:
    mail = osticket.mail_files()
    _original(osticket, unique_customer())  # a new ticket by mail alerts the admin agent
    assert osticket.recipients_since(mail), "osTicket sent no alert: is the capture working?"


def test_a_refused_database_password_never_shows_in_the_error(osticket: RealOsTicket) -> None:
    witness = "witness-Pa55word-4711"
    config = osticket.db_config()
    clock = SystemClock()
    db = ReadOnlyDatabase(
        DatabaseConfig(
            host=config.host,
            port=config.port,
            database=config.database,
            user=config.user,
            password=witness,
        ),  # fmt: skip
        clock,
    )
    with pytest.raises(Misconfigured) as caught:  # an Unauthorized, but not the API key's
        db.select("SELECT 1")
    assert f"refused the account '{config.user}' (Access denied" in caught.value.message
    assert "check ESCALATIONS_HELPDESK_DB_USER and ESCALATIONS_HELPDESK_DB_PASSWORD" in str(
        caught.value
    )
    assert witness not in str(caught.value)
    assert witness not in repr(caught.value)
    assert witness not in repr(db)


def test_an_unreachable_database_is_transient(osticket: RealOsTicket) -> None:
    config = osticket.db_config()
    db = ReadOnlyDatabase(
        DatabaseConfig(
            host="127.0.0.1",
            port=1,
            database=config.database,
            user=config.user,
            password=config.password,
            connect_timeout=2,
        ),  # fmt: skip
        SystemClock(),
    )
    with pytest.raises(TransientError, match="unreachable"):
        db.select("SELECT 1")


def test_the_worker_is_nobody_in_osticket(osticket: RealOsTicket) -> None:
    """The carrier job skips notes by the worker's own identity: the API key is no user or
    agent, so no agent's note is taken for the worker's (it once raised instead)."""
    adapter = osticket.adapter()
    me = adapter.me()
    agent = adapter.find_user(osticket.env["OSTICKET_STAFF_USER"])
    assert agent is not None
    assert agent.is_agent
    assert me.id != agent.id
    assert me.id == 0


class _SteppedClock(SystemClock):
    """This machine's clock, its wall time stepped by ``step`` (NTP, a resumed VM); the
    monotonic clock does not step."""

    def __init__(self) -> None:
        self.step = timedelta(0)

    def now(self) -> datetime:
        return super().now() + self.step


def test_the_clock_offset_follows_a_wall_clock_stepped_after_connecting(
    osticket: RealOsTicket,
) -> None:
    # It was measured once per connection: a worker clock stepped forward afterwards kept
    # the old offset, so the poll's signpost landed in osTicket's future and the cursor
    # moved past changes osTicket had yet to stamp (seen in the parking scenario).
    clock = _SteppedClock()
    db = ReadOnlyDatabase(osticket.db_config(), clock)
    try:
        db.select("SELECT 1 AS one")
        before = db.clock_offset
        assert before is not None
        assert abs(before) < timedelta(seconds=5)
        queries = db.queries
        clock.step = timedelta(days=3)
        after = db.clock_offset
        assert after is not None
        assert abs(after - (before - timedelta(days=3))) < timedelta(seconds=1)
        assert db.queries == queries  # no query to know it
    finally:
        db.close()


@pytest.fixture
def autoresponders_on(osticket: RealOsTicket) -> Iterator[RealOsTicket]:
    """osTicket's customer auto-responses switched on, for new tickets and new messages,
    globally, in every department and every help topic (the escalation topic's own "no
    auto-response", which docs/osticket.md asks for, off too: the adapter's guards alone),
    and put back after. The stock settings have them off, so without this a "no mail to the
    customer" check could not fail."""
    keys = ("ticket_autoresponder", "message_autoresponder")
    config = osticket.admin_sql(
        "SELECT `key`, value FROM ost_config WHERE namespace = 'core' AND `key` IN (%s, %s)",
        keys,
    )
    assert sorted(row["key"] for row in config) == sorted(keys)
    departments = osticket.admin_sql(
        "SELECT id, ticket_auto_response, message_auto_response FROM ost_department"
    )
    osticket.admin_sql(
        "UPDATE ost_config SET value = '1' WHERE namespace = 'core' AND `key` IN (%s, %s)", keys
    )
    osticket.admin_sql(
        "UPDATE ost_department SET ticket_auto_response = 1, message_auto_response = 1"
    )
    topics = osticket.admin_sql("SELECT topic_id, noautoresp FROM ost_help_topic")
    osticket.admin_sql("UPDATE ost_help_topic SET noautoresp = 0")  # the adapter's guard alone
    try:
        yield osticket
    finally:
        for row in config:
            osticket.admin_sql(
                "UPDATE ost_config SET value = %s WHERE namespace = 'core' AND `key` = %s",
                (row["value"], row["key"]),
            )
        for row in departments:
            osticket.admin_sql(
                "UPDATE ost_department SET ticket_auto_response = %s, message_auto_response = %s"
                " WHERE id = %s",
                (row["ticket_auto_response"], row["message_auto_response"], row["id"]),
            )
        for row in topics:
            osticket.admin_sql(
                "UPDATE ost_help_topic SET noautoresp = %s WHERE topic_id = %s",
                (row["noautoresp"], row["topic_id"]),
            )


def test_with_auto_responses_on_the_workers_create_and_copy_mail_no_customer(
    autoresponders_on: RealOsTicket,
) -> None:
    """The escalation ticket (``tickets.json``, ``autorespond`` off) and a copy
    (``tickets.email``, ``Auto-Submitted: auto-generated``) send the customer nothing, with
    osTicket set to auto-respond; the customer's own mail, new or a reply to that same
    ticket, gets its auto-response (so the capture and the settings are live)."""
    osticket = autoresponders_on
    adapter = osticket.adapter()
    sender = unique_customer()
    mail = osticket.mail_files()
    original = adapter.ticket_by_number(_original(osticket, sender))
    assert original is not None
    assert sender in osticket.recipients_since(mail), "no auto-response to a new ticket"

    mail = osticket.mail_files()
    marker = _unique_marker()
    created = adapter.create_ticket(escalation_draft(original, marker), marker=marker)
    adapter.add_article(
        created.id,
        ArticleDraft(body="<p>Still down.</p>", subject="Customer email: Still down"),
        marker=_unique_marker(),
    )
    assert sender not in osticket.recipients_since(mail)

    mail = osticket.mail_files()
    reply = osticket.customer_mail(sender, f"[#{created.number}] Re: still down", "Any news?")
    assert reply == created.number  # threaded into the escalation ticket
    assert sender in osticket.recipients_since(mail), "no auto-response to a new message"
