"""The escalation-api osTicket plugin (``plugins/osticket/escalation-api/``), seen from the
worker: whether it is installed and enabled, and its endpoints.

The plugin adds ``/api/escalation/...`` to osTicket's API behind the worker's API key (core
osTicket's exact-IP rule, and only the key its instance names) and makes each change with
osTicket's own methods as its configured bot agent: internal notes (``note``, idempotent by
``request_id``), assignment to an agent and a team (``assign``), form fields by variable name
(``fields``), the status (``status``) and a link to a parent ticket (``link``). Its answers
are JSON; errors carry the human text in ``error``, which ``connector.http`` puts into the
exception it raises.

Whether it is there is read from osTicket's plugin registry (``ost_plugin``,
``ost_plugin_instance``) through the read-only account: one query, no HTTP request.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from connector.errors import Forbidden, HelpdeskError, Misconfigured, Rejected, Unauthorized
from connector.http import HttpClient
from connector.osticket._db import ReadOnlyDatabase

INSTALL_PATH = "plugins/escalation-api"
INSTANCE_ENABLED = 0x1
MISCONFIGURED = frozenset({"not_configured", "bot_agent"})
"""The plugin's error codes for an instance set up wrong (no bot agent, an inactive one, no
worker API key): not the worker's key, and nothing works until an admin fixes it."""


def installed(db: ReadOnlyDatabase) -> bool:
    """The plugin is installed, enabled, and has an enabled instance (the one with the bot
    agent): what osTicket needs to load it for API requests."""
    rows = db.select(
        "SELECT p.id FROM {t:plugin} p JOIN {t:plugin_instance} i ON i.plugin_id = p.id "
        "WHERE p.install_path = %s AND p.isactive = 1 AND (i.flags & %s) <> 0 LIMIT 1",
        [INSTALL_PATH, INSTANCE_ENABLED],
    )
    return bool(rows)


class PluginClient:
    """The plugin's endpoints on the adapter's HTTP client. Every call is safe to repeat (a
    note by its request id, the rest because they set a state), so a lost answer is retried,
    not ambiguous."""

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def ping(self) -> dict[str, Any]:
        """``GET /api/escalation/ping``: the key is accepted and the bot agent is active. The
        answer also says whether the key can create tickets (``can_create_tickets``) and which
        of assign/edit/close/link the bot agent's role grants in each department it reaches
        (``bot_departments``: department id → names)."""
        try:
            resp = self._http.request("GET", "/api/escalation/ping")
        except Unauthorized as exc:
            raise _misconfigured(exc) or exc from None
        return self._answer(_json(resp, "ping"))

    def note(self, ticket_id: int, *, request_id: str, title: str, html: str) -> int:
        """An internal note by the bot agent, alerts off; the same ``request_id`` again writes
        nothing and answers the same entry id. Returns the thread entry id."""
        answer = self._post(
            ticket_id, "note", {"request_id": request_id, "title": title, "html": html}
        )
        return int(answer["entry_id"])

    def assign(self, ticket_id: int, *, staff: str | None, team: str | None) -> None:
        body: dict[str, Any] = {}
        if staff is not None:
            body["staff"] = staff
        if team is not None:
            body["team"] = team
        self._post(ticket_id, "assign", body)

    def fields(self, ticket_id: int, values: dict[str, str]) -> None:
        self._post(ticket_id, "fields", {"fields": values})

    def status(self, ticket_id: int, status: str) -> None:
        self._post(ticket_id, "status", {"status": status})

    def link(self, child_id: int, parent_id: int) -> None:
        self._post(child_id, "link", {"parent_id": parent_id})

    def _post(self, ticket_id: int, action: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/api/escalation/tickets/{int(ticket_id)}/{action}"
        try:
            resp = self._http.request("POST", path, json=body, idempotent=True)
        except Rejected as exc:
            if exc.status == 400 and "URL not supported" in (exc.body_excerpt or ""):
                raise Rejected(
                    "osTicket does not know /api/escalation: the escalation-api plugin was "
                    "disabled or removed since the worker started (docs/osticket.md)",
                    status=exc.status, method=exc.method, path=exc.path,
                ) from None  # fmt: skip
            raise
        except Unauthorized as exc:
            raise _misconfigured(exc) or exc from None
        except Forbidden as exc:
            # the bot agent's role or departments, not the API key: this one write fails
            raise Rejected(
                f"osTicket's bot agent may not: {exc.message}",
                status=exc.status, method=exc.method, path=exc.path,
            ) from None  # fmt: skip
        return self._answer(_json(resp, action))

    @staticmethod
    def _answer(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or data.get("ok") is not True:
            raise HelpdeskError(f"osTicket escalation-api: unexpected answer {str(data)[:200]}")
        return data


def _json(resp: requests.Response, action: str) -> Any:
    """The answer's JSON, or one clear error (a proxy's or a login page's HTML on a 200)."""
    try:
        return resp.json()
    except ValueError:
        raise HelpdeskError(
            f"osTicket {action}: the plugin answered no JSON (a proxy or login page in front "
            "of osTicket?)",
            status=resp.status_code,
        ) from None


def _misconfigured(exc: Unauthorized) -> Misconfigured | None:
    """The plugin's 401 for an instance set up wrong, as a ``Misconfigured`` naming the admin's
    step; ``None`` for a refused key."""
    try:
        body = json.loads(exc.body_excerpt or "")
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("code") not in MISCONFIGURED:
        return None
    return Misconfigured(
        f"{body.get('error')}: fix the plugin instance in osTicket (Admin Panel -> Manage -> "
        "Plugins -> Escalation API -> Instances: Bot agent an active agent, Worker API key the "
        "worker's key)",
        status=exc.status, method=exc.method, path=exc.path, request_id=exc.request_id,
    )  # fmt: skip
