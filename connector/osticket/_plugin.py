"""The escalation-api osTicket plugin (``plugins/osticket/escalation-api/``), seen from the
worker: whether it is installed and enabled, and its endpoints.

The plugin adds ``/api/escalation/...`` to osTicket's API behind the same API key (same
exact-IP rule) and makes each change with osTicket's own methods as its configured bot agent:
internal notes (``note``, idempotent by ``request_id``), assignment to an agent and a team
(``assign``), form fields by variable name (``fields``), the status (``status``) and a link to
a parent ticket (``link``). Its answers are JSON; errors carry the human text in ``error``,
which ``connector.http`` puts into the exception it raises.

Whether it is there is read from osTicket's plugin registry (``ost_plugin``,
``ost_plugin_instance``) through the read-only account: one query, no HTTP request.
"""

from __future__ import annotations

from typing import Any

from connector.errors import Forbidden, HelpdeskError, Rejected
from connector.http import HttpClient
from connector.osticket._db import ReadOnlyDatabase

INSTALL_PATH = "plugins/escalation-api"
INSTANCE_ENABLED = 0x1


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
        """``GET /api/escalation/ping``: the key is accepted and the bot agent is active."""
        return self._answer(self._http.request("GET", "/api/escalation/ping").json())

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
        except Forbidden as exc:
            # the bot agent's role or departments, not the API key: this one write fails
            raise Rejected(
                f"osTicket's bot agent may not: {exc.message}",
                status=exc.status, method=exc.method, path=exc.path,
            ) from None  # fmt: skip
        try:
            data = resp.json()
        except ValueError:
            raise HelpdeskError(
                f"osTicket {action}: the plugin answered no JSON", status=resp.status_code
            ) from None
        return self._answer(data)

    @staticmethod
    def _answer(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or data.get("ok") is not True:
            raise HelpdeskError(f"osTicket escalation-api: unexpected answer {str(data)[:200]}")
        return data
