"""The real osTicket 1.18 for the tests: ``shared/osticket/up`` (``.ci/run`` starts it) prints
the ``OSTICKET_*`` variables this module reads.

Without them the osTicket tests are skipped on a developer's machine and **fail** under
``CI=true``. Setup that is an administrator's job in osTicket's admin panel (the escalation
help topic and its form, a status agents set to flag a ticket) is done here with the database
account osTicket itself uses; the escalation-api plugin is installed as docs/osticket.md tells
an admin to: its folder copied into ``include/plugins``, then installed, enabled and given an
instance with the bot agent and the worker's API key in the admin panel (``/scp/plugins.php``,
as the admin agent).
Everything the worker does goes through the production adapter.
A customer's mail arrives the way a mail server would hand it over (``tickets.email``).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import default as default_policy
from email.utils import getaddresses
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pymysql
import pytest
import requests

from connector.base import ArticleDraft, AttachmentUpload, Marker, Ticket, TicketDraft
from connector.clock import SystemClock
from connector.http import HttpPolicy, build_session
from connector.osticket import DatabaseConfig, OsTicketAdapter, ReadOnlyDatabase

VARIABLES = (
    "OSTICKET_URL",
    "OSTICKET_API_KEY",
    "OSTICKET_DB_HOST",
    "OSTICKET_DB_PORT",
    "OSTICKET_DB_NAME",
    "OSTICKET_DB_USER",
    "OSTICKET_DB_PASSWORD",
    "OSTICKET_DB_ADMIN_USER",
    "OSTICKET_DB_ADMIN_PASSWORD",
    "OSTICKET_MAIL_DIR",
    "OSTICKET_STAFF_USER",
    "OSTICKET_STAFF_PASSWORD",
    "OSTICKET_DIR",
)
TOPIC = "Escalation"
FLAG_STATUS = "Escalate"
PLUGIN_SOURCE = Path(__file__).resolve().parents[3] / "plugins" / "osticket" / "escalation-api"
PLUGIN_PATH = "plugins/escalation-api"
BOT_AGENT_FIELD = "bot_agent"
API_KEY_FIELD = "api_key"
REQUIRED_TEXT = 0x7701
"""Form field flags: enabled, seen, edited and required by agents and clients."""
AGENT_OPTIONAL = 0x3001
"""Form field flags: enabled, seen and edited by agents only, not required."""
ESCALATION_FIELDS = (
    ("escalation_key", "Escalation key", "text", REQUIRED_TEXT),
    ("escalation_level", "Escalation level", "text", REQUIRED_TEXT),
    ("origin_ticket", "Original ticket", "text", REQUIRED_TEXT),
    ("carrier_route_failed", "Carrier route failed", "bool", AGENT_OPTIONAL),
    ("escalation_rfo", "Reason for outage", "text", AGENT_OPTIONAL),
)
PROCESS_STATUSES = (("Parked", "open"), ("Confirmed", "closed"), ("Not satisfied", "open"))
"""The statuses of ``[statuses]`` that osTicket does not ship (name, state)."""
AGENTS = (
    ("duty.manager", "duty.manager@fused.example", "Jane", "Doe"),
    ("cs.supervisor", "cs.supervisor@fused.example", "Sam", "Supervisor"),
    ("lloyd.foley", "lloyd.foley@jt.example", "Lloyd", "Foley"),
    ("sara.mccarthy", "sara.mccarthy@jt.example", "Sara", "McCarthy"),
)
"""The agents of ``osticket.toml [people]`` (username, email, first and last name)."""


@dataclass(frozen=True)
class RealOsTicket:
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.env["OSTICKET_URL"]

    @property
    def api_key(self) -> str:
        return self.env["OSTICKET_API_KEY"]

    def db_config(self) -> DatabaseConfig:
        return DatabaseConfig(
            host=self.env["OSTICKET_DB_HOST"],
            port=int(self.env["OSTICKET_DB_PORT"]),
            database=self.env["OSTICKET_DB_NAME"],
            user=self.env["OSTICKET_DB_USER"],
            password=self.env["OSTICKET_DB_PASSWORD"],
        )

    def admin_sql(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """A statement as osTicket's own account (the fixture's admin steps only)."""
        conn = pymysql.connect(
            host=self.env["OSTICKET_DB_HOST"],
            port=int(self.env["OSTICKET_DB_PORT"]),
            user=self.env["OSTICKET_DB_ADMIN_USER"],
            password=self.env["OSTICKET_DB_ADMIN_PASSWORD"],
            database=self.env["OSTICKET_DB_NAME"],
            autocommit=True,
            cursorclass=pymysql.cursors.DictCursor,
        )
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, args)
                return list(cursor.fetchall())
        finally:
            conn.close()

    # -- the escalation-api plugin, as an admin installs it ------------------------------------
    def install_plugin(self) -> None:
        """Copy ``plugins/osticket/escalation-api`` into ``include/plugins`` (this checkout's
        code, every session), then in the admin panel: Install, enable, and one enabled
        instance whose bot agent is the admin agent and whose worker API key is the fixture's
        key. Idempotent."""
        target = Path(self.env["OSTICKET_DIR"]) / "www" / "include" / "plugins" / "escalation-api"
        shutil.copytree(PLUGIN_SOURCE, target, dirs_exist_ok=True)
        web = self._agent_session()
        plugin = self._plugin_row()
        if plugin is None:
            page = web.get(self.url + "/scp/plugins.php?a=add", timeout=30)
            assert "Escalation API" in page.text, "osTicket does not list the copied plugin"
            self._admin_post(
                web, "/scp/plugins.php", page.text, do="install", install_path=PLUGIN_PATH
            )
            plugin = self._plugin_row()
            assert plugin is not None, "osTicket did not install the plugin"
        self.set_plugin_enabled(True, web=web)
        pid = plugin["id"]
        settings = {BOT_AGENT_FIELD: self.env["OSTICKET_STAFF_USER"], API_KEY_FIELD: self.api_key}
        instances = self.admin_sql("SELECT id FROM ost_plugin_instance WHERE plugin_id=%s", (pid,))
        if not instances:
            form = web.get(self.url + f"/scp/plugins.php?id={pid}&a=add-instance", timeout=30)
            answer = self._admin_post(
                web,
                f"/scp/plugins.php?id={pid}&a=add-instance",
                form.text,
                do="add-instance", a="add-instance", id=str(pid), xid="",
                name="Escalation worker", isactive="1", notes="", **settings,
            )  # fmt: skip
            assert "Added Successfully" in answer, answer[:500]
            return
        xid = instances[0]["id"]
        if not self.admin_sql(  # an instance of an older plugin, without the key: edit it
            "SELECT id FROM ost_config WHERE namespace=%s AND `key`=%s AND value=%s",
            (f"plugin.{pid}.instance.{xid}", API_KEY_FIELD, self.api_key),
        ):
            path = f"/scp/plugins.php?id={pid}&xid={xid}"
            form = web.get(self.url + path, timeout=30)
            answer = self._admin_post(
                web, path, form.text, do="update-instance", id=str(pid), xid=str(xid),
                name="Escalation worker", isactive="1", notes="", **settings,
            )  # fmt: skip
            assert "Updated Successfully" in answer, answer[:500]

    def set_plugin_enabled(self, enabled: bool, *, web: requests.Session | None = None) -> None:
        """Admin Panel → Manage → Plugins → select → Enable / Disable."""
        plugin = self._plugin_row()
        assert plugin is not None
        web = web or self._agent_session()
        page = web.get(self.url + "/scp/plugins.php", timeout=30)
        self._admin_post(
            web, "/scp/plugins.php", page.text, do="mass_process",
            a="enable" if enabled else "disable", **{"ids[]": str(plugin["id"])},
        )  # fmt: skip
        assert self._plugin_row() == {"id": plugin["id"], "isactive": int(enabled)}

    def _plugin_row(self) -> dict[str, Any] | None:
        rows = self.admin_sql(
            "SELECT id, isactive FROM ost_plugin WHERE install_path=%s", (PLUGIN_PATH,)
        )
        return rows[0] if rows else None

    def _admin_post(self, web: requests.Session, path: str, page: str, **form: str) -> str:
        answer = web.post(self.url + path, data={"__CSRFToken__": _csrf(page), **form}, timeout=30)
        assert answer.status_code == 200, answer.text[:300]
        return answer.text

    def adapter(self, *, session: requests.Session | None = None) -> OsTicketAdapter:
        policy = HttpPolicy(requests_per_minute=6000, burst=100)
        clock = SystemClock()
        return OsTicketAdapter(
            self.url,
            self.api_key,
            ReadOnlyDatabase(self.db_config(), clock),
            policy,
            clock,
            session=session or build_session(policy),
        )

    # -- the customer's side -------------------------------------------------------------------
    def customer_mail(
        self,
        sender: str,
        subject: str,
        body: str,
        *,
        attachments: tuple[tuple[str, bytes], ...] = (),
    ) -> str:
        """A customer's mail handed to osTicket (``tickets.email``); returns the ticket number
        osTicket filed it under."""
        msg = EmailMessage()
        msg["From"] = f"Carla Customer <{sender}>"
        msg["To"] = "support@helpdesk.example"
        msg["Subject"] = subject
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@customer.example.org>"
        msg.set_content(body)
        for name, data in attachments:
            msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
        resp = requests.post(
            self.url + "/api/tickets.email",
            data=msg.as_bytes(),
            headers={"X-API-Key": self.api_key},
            timeout=30,
            allow_redirects=False,
        )
        assert resp.status_code == 201, resp.text
        return resp.text.strip()

    # -- what an admin sets up -----------------------------------------------------------------
    def ensure_escalation_topic(self) -> None:
        """Help topic ``Escalation`` (department Maintenance, no auto-response) with a form
        carrying the escalation fields, the open-state status ``Escalate``, the statuses of
        ``[statuses]`` osTicket lacks, and the agents of ``[people]``. Idempotent."""
        forms = self.admin_sql("SELECT id FROM ost_form WHERE title=%s AND type='G'", (TOPIC,))
        if not forms:
            self.admin_sql(
                "INSERT INTO ost_form (type, flags, title, name, created, updated) "
                "VALUES ('G', 1, %s, '', NOW(), NOW())",
                (TOPIC,),
            )
            forms = self.admin_sql("SELECT MAX(id) AS id FROM ost_form")
        form_id = forms[0]["id"]
        for sort, (name, label, kind, flags) in enumerate(ESCALATION_FIELDS, start=1):
            if not self.admin_sql(
                "SELECT id FROM ost_form_field WHERE form_id=%s AND name=%s", (form_id, name)
            ):
                self.admin_sql(
                    "INSERT INTO ost_form_field (form_id, flags, type, label, name, "
                    "configuration, sort, created, updated) "
                    "VALUES (%s, %s, %s, %s, %s, '{}', %s, NOW(), NOW())",
                    (form_id, flags, kind, label, name, sort),
                )
            self.admin_sql(
                "UPDATE ost_form_field SET flags=%s, type=%s WHERE form_id=%s AND name=%s",
                (flags, kind, form_id, name),
            )
        if not self.admin_sql("SELECT topic_id FROM ost_help_topic WHERE topic=%s", (TOPIC,)):
            self.admin_sql(
                "INSERT INTO ost_help_topic (topic_pid, ispublic, noautoresp, flags, dept_id, "
                "topic, created, updated) VALUES (0, 0, 1, 2, 3, %s, NOW(), NOW())",
                (TOPIC,),
            )
            topic_id = self.admin_sql(
                "SELECT topic_id FROM ost_help_topic WHERE topic=%s", (TOPIC,)
            )
            self.admin_sql(
                "INSERT INTO ost_help_topic_form (topic_id, form_id, sort) VALUES (%s, 2, 1), "
                "(%s, %s, 2)",
                (topic_id[0]["topic_id"], topic_id[0]["topic_id"], form_id),
            )
        statuses = ((FLAG_STATUS, "open"), *PROCESS_STATUSES)
        for sort, (status, state) in enumerate(statuses, start=6):
            if not self.admin_sql("SELECT id FROM ost_ticket_status WHERE name=%s", (status,)):
                self.admin_sql(
                    "INSERT INTO ost_ticket_status (name, state, mode, flags, sort, properties, "
                    "created, updated) VALUES (%s, %s, 1, 0, %s, "
                    '\'{"description":"Escalation process"}\', NOW(), NOW())',
                    (status, state, sort),
                )
        for username, email, first, last in AGENTS:
            if not self.admin_sql("SELECT staff_id FROM ost_staff WHERE username=%s", (username,)):
                self.admin_sql(
                    "INSERT INTO ost_staff (dept_id, role_id, username, firstname, lastname, "
                    "email, signature, isactive, permissions, created, updated) "
                    "VALUES (3, 1, %s, %s, %s, %s, '', 1, '{}', NOW(), NOW())",
                    (username, first, last, email),
                )

    def agent_id(self, username: str) -> int:
        """The adapter's id of an osTicket agent (negative staff id)."""
        (row,) = self.admin_sql("SELECT staff_id FROM ost_staff WHERE username=%s", (username,))
        return -int(row["staff_id"])

    # -- what an agent does in the agent panel (/scp) -----------------------------------------
    def _agent_session(self) -> requests.Session:
        web = requests.Session()
        page = web.get(self.url + "/scp/login.php", timeout=30)
        login = web.post(
            self.url + "/scp/login.php",
            data={
                "__CSRFToken__": _csrf(page.text),
                "do": "scplogin",
                "userid": self.env["OSTICKET_STAFF_USER"],
                "passwd": self.env["OSTICKET_STAFF_PASSWORD"],
            },
            timeout=30,
            allow_redirects=False,
        )
        assert login.status_code == 302, login.text[:300]
        return web

    def agent_set_status(self, ticket_id: int, status: str) -> None:
        """An agent sets a ticket's status in osTicket's agent panel, as ``ostadmin``."""
        (row,) = self.admin_sql("SELECT id FROM ost_ticket_status WHERE name=%s", (status,))
        web = self._agent_session()
        ticket = web.get(self.url + f"/scp/tickets.php?id={ticket_id}", timeout=30)
        changed = web.post(
            self.url + f"/scp/ajax.php/tickets/{ticket_id}/status",
            data={"status_id": row["id"], "comments": ""},
            headers={"X-CSRFToken": _csrf(ticket.text)},
            timeout=30,
        )
        assert changed.status_code == 201, changed.text[:300]

    def agent_note(self, ticket_id: int, title: str, text: str) -> None:
        """An agent posts an internal note in the agent panel, as ``ostadmin``."""
        web = self._agent_session()
        page = web.get(self.url + f"/scp/tickets.php?id={ticket_id}", timeout=30)
        csrf = _csrf(page.text)
        lock = web.post(
            self.url + f"/scp/ajax.php/lock/ticket/{ticket_id}",
            headers={"X-CSRFToken": csrf},
            timeout=30,
        )
        code = lock.json().get("code", "") if lock.ok else ""
        posted = web.post(
            self.url + f"/scp/tickets.php?id={ticket_id}",
            data={
                "__CSRFToken__": csrf,
                "a": "postnote",
                "id": ticket_id,
                "lockCode": code,
                "title": title,
                "note": text,
            },
            timeout=30,
        )
        assert posted.status_code == 200, posted.text[:300]

    def agent_set_field(self, ticket_id: int, variable: str, value: str | bool) -> None:
        """An agent edits one form field of a ticket in the agent panel (the field's "Update"
        dialog), as ``ostadmin``: a text field gets ``value``, a checkbox is ticked (``True``)
        or cleared."""
        (field,) = self.admin_sql(
            "SELECT ff.id FROM ost_form_field ff JOIN ost_form_entry fe ON fe.form_id = "
            "ff.form_id WHERE fe.object_type = 'T' AND fe.object_id = %s AND ff.name = %s",
            (ticket_id, variable),
        )
        web = self._agent_session()
        page = web.get(self.url + f"/scp/tickets.php?id={ticket_id}", timeout=30)
        csrf = _csrf(page.text)
        path = f"/scp/ajax.php/tickets/{ticket_id}/field/{field['id']}/edit"
        form = web.get(self.url + path, headers={"X-CSRFToken": csrf}, timeout=30)
        inputs = [
            dict(re.findall(r'(\w+)="([^"]*)"', tag))
            for tag in re.findall(r"<input[^>]*>", form.text)
        ]
        data: dict[str, str] = {}
        if isinstance(value, bool):  # a checkbox: ticked, its field id is posted
            (box,) = [i for i in inputs if i.get("type") == "checkbox"]
            if value:
                data[box["name"]] = box["value"]
        else:
            (text,) = [i for i in inputs if i.get("type") == "text"]
            data[text["name"]] = value
        answer = web.post(self.url + path, data=data, headers={"X-CSRFToken": csrf}, timeout=30)
        assert answer.status_code == 201, answer.text[:300]

    # -- outbound mail -------------------------------------------------------------------------
    def mail_files(self) -> set[Path]:
        return set(Path(self.env["OSTICKET_MAIL_DIR"]).glob("*"))

    def texts_since(self, before: set[Path]) -> list[str]:
        """The decoded text parts of the mail osTicket sent since ``before`` was taken."""
        texts = []
        for path in sorted(self.mail_files() - before):
            message = BytesParser(policy=default_policy).parsebytes(path.read_bytes())
            body = message.get_body(preferencelist=("plain", "html"))
            texts.append(f"{message['Subject']}\n{body.get_content() if body else ''}")
        return texts

    def recipients_since(self, before: set[Path]) -> list[str]:
        """Every To/Cc/Bcc address of the mail osTicket sent since ``before`` was taken."""
        found: list[str] = []
        for path in sorted(self.mail_files() - before):
            headers = BytesHeaderParser().parsebytes(path.read_bytes())
            values = [v for h in ("To", "Cc", "Bcc") for v in headers.get_all(h, [])]
            found += [address.lower() for _, address in getaddresses(values) if address]
        return found


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" content="([^"]+)"', page) or re.search(
        r'name="__CSRFToken__" value="([^"]+)"', page
    )
    assert found, "no CSRF token on the page"
    return found.group(1)


def escalation_draft(
    original: Ticket,
    marker: Marker,
    *,
    title: str = "[ESC L1] Line down at the depot",
    body: str = "<p>Escalated from the original ticket.</p>",
    attachments: tuple[AttachmentUpload, ...] = (),
) -> TicketDraft:
    """The level-1 escalation ticket of ``original`` as the worker drafts it: the escalation
    topic, the customer's, the key, level and origin fields, a first note."""
    return TicketDraft(
        title=title,
        group=TOPIC,
        customer_id=original.customer_id,
        fields={
            "escalation_key": marker.value,
            "escalation_level": "1",
            "origin_ticket": original.number,
        },
        first_note=ArticleDraft(body=body, attachments=attachments),
    )


def real_osticket() -> RealOsTicket:
    """The running osTicket, or a skip (a failure under ``CI=true``) naming what is missing."""
    missing = [name for name in VARIABLES if not os.environ.get(name)]
    if missing:
        reason = (
            f'no real osTicket: {", ".join(missing)} unset (run `eval "$(../shared/osticket/up)"`)'
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; .ci/run must start it", pytrace=False)
        pytest.skip(reason)
    return RealOsTicket({name: os.environ[name] for name in VARIABLES})


def unique_customer() -> str:
    return f"cust.{uuid.uuid4().hex[:12]}@customer.example.org"


def counting_session(counter: list[str]) -> requests.Session:
    """A session that appends ``METHOD path`` to ``counter`` for every response."""
    session = build_session(HttpPolicy())

    def hook(resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        counter.append(f"{resp.request.method} {urlparse(resp.url).path}")

    session.hooks["response"].append(hook)
    return session
