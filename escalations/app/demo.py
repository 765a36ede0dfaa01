"""``escalations sandbox`` and ``escalations demo``.

The demo starts the Zammad-compatible sandbox on a free loopback port and runs the real worker
(real adapter, real HTTP, real store) against it through a scripted day. Time is accelerated:
the sandbox and the worker share one ``FakeClock``, so the day takes seconds. The story is told
from what the sandbox holds afterwards, not from what the worker meant to do.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from escalations.app.logs import configure_logging
from escalations.bindings.zammad import ZammadFieldMap
from escalations.bindings.zammad.provision_spec import (
    LEVEL_PLACEHOLDER,
    PROVISION_FILE,
    ProvisionSpec,
)
from escalations.clock import FakeClock
from escalations.errors import ConfigError
from escalations.mappings import load_mapping_file, load_mappings
from escalations.settings import Settings, shipped_mappings_dir

log = logging.getLogger(__name__)

BOT = "escalation-bot"
ALICE = "alice.agent@fused.example"
DUTY_MANAGER = "duty.manager@fused.example"
DEMO_TICKET = "Broadband down since Monday"
DEMO_DAY = "2026-12-01"


def _say(line: str = "") -> None:
    print(line, flush=True)  # noqa: T201


# -- escalations sandbox ----------------------------------------------------------------------


ADMIN = "admin@fused.example"
CUSTOMER = "sean.walsh@residential.example"
AGENT_TOKEN = "sandbox-alice-token"  # noqa: S105 - the sandbox's published demo token
CUSTOMER_TOKEN = "sandbox-sean-token"  # noqa: S105 - the sandbox's published demo token


def serve_sandbox(*, port: int, seed: Path | None) -> int:
    from sandbox import ZammadSandbox, serve

    if seed is not None and not seed.is_file():
        raise ConfigError(f"{seed}: seed file not found")
    sandbox = ZammadSandbox.from_seed(seed) if seed else ZammadSandbox.demo()
    try:
        server = serve(sandbox, host="127.0.0.1", port=port)
    except OSError as exc:
        raise ConfigError(f"--port {port}: cannot listen on 127.0.0.1 ({exc.strerror})") from None
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    with server:
        lines = _provisioned_demo(sandbox, server.url) if seed is None else _seeded(sandbox)
        _say(f"sandbox: Zammad-compatible API at {server.url}")
        for line in lines:
            _say(line)
        _say("Ctrl-C stops the sandbox (its data lives in memory only).")
        stop.wait()
    return 0


def _seeded(sandbox: Any) -> list[str]:
    """For a seed of the admin's own: its bot token if it has the demo's bot, nothing else."""
    try:
        token = sandbox.token_of(BOT)
    except KeyError:
        return ["(no escalation-bot user in this seed: issue a token in it for the worker)"]
    return [f"token (escalation-bot, ticket.agent): {token}"]


def _zammad_fieldmap(mappings_dir: Path) -> ZammadFieldMap:
    """The Zammad field map of ``mappings_dir``: the sandbox is a Zammad."""
    fieldmap = load_mappings(mappings_dir, "zammad").helpdesk
    if not isinstance(fieldmap, ZammadFieldMap):
        raise ConfigError(f"{mappings_dir}: holds no Zammad field map for the Zammad sandbox")
    return fieldmap


def _provisioned_demo(sandbox: Any, url: str) -> list[str]:
    """Provision the demo sandbox with ``escalations provision``'s own code, give the demo's
    agent and customer a token, and say how to try it: the lines to print."""
    from escalations.app.provision import provision_sandbox
    from escalations.clock import SystemClock

    mappings_dir = shipped_mappings_dir()
    provision_sandbox(url, sandbox.token_of(ADMIN), SystemClock(), mappings_dir)
    # as docs/admins.md tells an admin: Zammad's day ("today" in overviews) is the process's
    sandbox.set_setting("timezone_default", str(load_mappings(mappings_dir).profile.tz))
    sandbox.issue_token(ALICE, ("ticket.agent",), value=AGENT_TOKEN, name="demo agent")
    sandbox.issue_token(CUSTOMER, ("ticket.customer",), value=CUSTOMER_TOKEN, name="demo customer")
    fieldmap = _zammad_fieldmap(mappings_dir)
    (ticket,) = [t for t in sandbox.tickets.values() if t["title"] == DEMO_TICKET]
    ticket_id = ticket["id"]
    macro_id = _macro_id(sandbox, url, "Escalate")
    fields = json.dumps(
        {fieldmap.fields.reason: "outage_beyond_sla", fieldmap.fields.segment: "residential"}
    )
    api = f"{url}/api/v1"
    as_alice = f"-H 'Authorization: Token token={AGENT_TOKEN}' -H 'Content-Type: application/json'"
    as_sean = (
        f"-H 'Authorization: Token token={CUSTOMER_TOKEN}' -H 'Content-Type: application/json'"
    )
    email = json.dumps({"ticket_id": ticket_id, "body": "Still no broadband.", "type": "web"})
    return [
        "provisioned with `escalations provision` (attributes, parked state, macros, overviews, "
        "text modules)",
        "tokens:",
        f"  worker   (escalation-bot, ticket.agent): {sandbox.token_of(BOT)}",
        f"  admin    ({ADMIN}, admin): {sandbox.token_of(ADMIN)}",
        f"  agent    ({ALICE}, ticket.agent): {AGENT_TOKEN}",
        f"  customer ({CUSTOMER}, ticket.customer): {CUSTOMER_TOKEN}",
        "in another shell, point the worker at it:",
        f"  export ESCALATIONS_HELPDESK_URL={url}",
        f"  export ESCALATIONS_HELPDESK_TOKEN={sandbox.token_of(BOT)}",
        f"  export ESCALATIONS_HELPDESK_ADMIN_TOKEN={sandbox.token_of(ADMIN)}",
        # the mappings it was provisioned from (an ESCALATIONS_MAPPINGS_DIR of the shell's own
        # would be compared with objects made from these)
        f"  export ESCALATIONS_MAPPINGS_DIR={mappings_dir}",
        # a new store for each session: the sandbox's data lives only as long as it runs
        f"  export ESCALATIONS_STATE_DIR={tempfile.mkdtemp(prefix='escalations-sandbox-')}",
        "  export ESCALATIONS_HTTP_REQUESTS_PER_MINUTE=6000  # a real Zammad keeps the default 60",
        "  escalations check --live",
        f'then try it (ticket #{ticket["number"]} "{DEMO_TICKET}", id {ticket_id}):',
        "  # 1. the agent sets reason and segment and runs the Escalate macro",
        f"  curl -fsS -o /dev/null -X PUT {api}/tickets/{ticket_id} {as_alice} -d '{fields}' && "
        f"curl -fsS -o /dev/null -X POST {api}/tickets/mass_macro {as_alice} "
        f'-d \'{{"macro_id": {macro_id}, "ticket_ids": [{ticket_id}]}}\'',
        "  # 2. the customer writes again",
        f"  curl -fsS -o /dev/null -X POST {api}/ticket_articles {as_sean} -d '{email}'",
        "  # 3. one pass of the worker, then what it did",
        "  escalations run --once && escalations status",
    ]


def _macro_id(sandbox: Any, url: str, name: str) -> int:
    import requests

    answer = requests.get(
        f"{url}/api/v1/macros",
        headers={"Authorization": f"Token token={sandbox.token_of(ADMIN)}"},
        timeout=10,
    )
    answer.raise_for_status()
    return next(int(m["id"]) for m in answer.json() if m["name"] == name)


# -- escalations demo --------------------------------------------------------------------------


@dataclass
class _Snapshot:
    articles: int
    tags: frozenset[str]
    owner: str | None


class _Demo:
    def __init__(self, state_dir: Path) -> None:
        from sandbox import ZammadSandbox, serve

        self.tz = ZoneInfo("Europe/London")
        start = datetime.fromisoformat(f"{DEMO_DAY}T08:55:00").replace(tzinfo=self.tz)
        self.clock = FakeClock(start)
        self.sandbox = ZammadSandbox.demo(clock=self.clock)
        self.server = serve(self.sandbox, host="127.0.0.1", port=0)
        self.state_dir = state_dir
        self.settings = Settings(
            _env_file=None,
            helpdesk_url=self.server.url,
            helpdesk_token=SecretStr(self.sandbox.token_of(BOT)),
            state_dir=state_dir,
        )
        self.mappings = load_mappings(shipped_mappings_dir())
        self.fieldmap = _zammad_fieldmap(shipped_mappings_dir())
        self._provision()
        self._build_worker()
        self.escalation_id: int | None = None
        self._seen: dict[int, _Snapshot] = {}
        self.outbox_before = len(self.sandbox.outbox)

    def _provision(self) -> None:
        """Provision the sandbox as an admin would (``escalations provision``'s code), and
        give the demo's agents tokens: they click the provisioned macros through the API."""
        from connector.http import HttpClient
        from connector.zammad import ZammadAdmin
        from escalations.app.provision import provision_sandbox
        from escalations.app.wiring import http_policy

        url = self.server.url
        provision_sandbox(url, self.sandbox.token_of(ADMIN), self.clock, shipped_mappings_dir())
        self.clients: dict[str, ZammadAdmin] = {}
        for login in (ALICE, DUTY_MANAGER):
            token = self.sandbox.issue_token(login, ("ticket.agent",), name="demo agent")
            headers = {"Authorization": f"Token token={token}"}
            policy = http_policy(self.settings)
            self.clients[login] = ZammadAdmin(HttpClient(url, headers, policy, self.clock))
        admin = ZammadAdmin(
            HttpClient(
                url,
                {"Authorization": f"Token token={self.sandbox.token_of(ADMIN)}"},
                http_policy(self.settings),
                self.clock,
            )
        )
        self.macros = {str(m["name"]): int(m["id"]) for m in admin.list("macros")}
        spec = load_mapping_file(shipped_mappings_dir() / PROVISION_FILE, ProvisionSpec)
        self.macro_names = spec.macros
        modules = admin.list("text_modules")
        self.carrier_module = next(str(m["content"]) for m in modules if m["keywords"] == "carrier")

    def level_macro(self, level: int) -> str:
        return self.macro_names.level.replace(LEVEL_PLACEHOLDER, str(level))

    def macro(self, ticket_id: int, login: str, name: str) -> dict[str, Any]:
        """``login`` runs the macro ``name`` on the ticket, as from Zammad's macro menu;
        Zammad's answer."""
        return self.clients[login].run_macro(self.macros[name], [ticket_id])

    def carrier_note(self, **values: str) -> str:
        """The carrier-contact text module as inserted (``::carrier``), hints replaced by the
        values given and left as they are for the details not given."""
        from escalations.carrier import html_to_text

        lines = []
        for line in html_to_text(self.carrier_module).splitlines():
            label = line.split(":", 1)[0]
            given = values.get(label.lower().replace(" ", "_"))
            lines.append(f"{label}: {given}" if given is not None and ":" in line else line)
        return "\n".join(lines)

    def _build_worker(self) -> None:
        from escalations.app.wiring import build, build_adapter, open_store
        from escalations.effects.executor import new_worker_id

        adapter = build_adapter(self.settings, self.clock)
        self.store = open_store(self.settings, self.clock)
        worker_id = new_worker_id()
        self.store.acquire_lock(worker=worker_id)
        installation = build(
            self.settings,
            self.clock,
            adapter=adapter,
            store=self.store,
            mappings=self.mappings,
            worker_id=worker_id,
        )
        self.ctx = installation.ctx
        self.worker = installation.worker()

    def close(self) -> None:
        self.store.release_lock()
        self.store.close()
        self.server.shutdown()

    # -- the story ---------------------------------------------------------------------------
    def at(self, hhmm: str) -> None:
        target = datetime.fromisoformat(f"{DEMO_DAY}T{hhmm}:00").replace(tzinfo=self.tz)
        if target > self.clock.now():
            self.clock.set(target)

    def local(self) -> str:
        return self.clock.now().astimezone(self.tz).strftime("%H:%M")

    def agent(self, text: str, action: Callable[[], Any]) -> None:
        action()
        _say(f"{self.local()}  agent   {text}")

    def tick(self) -> None:
        """One worker pass, then what changed on the escalation ticket, as the sandbox shows."""
        results = self.worker.run_once()
        if any(r is None for r in results):
            _say(f"{self.local()}  worker  a pass failed; see the log above")
        if self.escalation_id is None:
            key_field = self.fieldmap.fields.escalation_key
            found = [t for t in self.sandbox.tickets.values() if t.get(key_field)]
            if not found:
                _say(f"{self.local()}  worker  nothing to do")
                return
            self.escalation_id = found[0]["id"]
            ticket = found[0]
            _say(
                f"{self.local()}  worker  raised escalation ticket #{ticket['number']} "
                f'"{ticket["title"]}" in group {ticket["group"]} for the internal placeholder '
                f"customer, linked to #{ticket[self.fieldmap.fields.original_ticket]}"
            )
        self._report(self.escalation_id)

    def _report(self, ticket_id: int) -> None:
        ticket = self.sandbox.ticket(ticket_id)
        articles = self.sandbox.articles_of(ticket_id)
        tags = frozenset(self.sandbox.tags_of(ticket_id))
        before = self._seen.get(ticket_id, _Snapshot(0, frozenset(), None))
        for article in articles[before.articles :]:
            if article["sender"] != "Agent" or "ref hde1-" not in article["body"]:
                continue
            subject = article.get("subject") or "(note)"
            files = [a["filename"] for a in article.get("attachments", [])]
            extra = f" with {', '.join(files)}" if files else ""
            _say(f"{self.local()}  worker  internal note: {subject}{extra}")
        if tags != before.tags:
            _say(f"{self.local()}  worker  tags now: {', '.join(sorted(tags))}")
        if ticket.get("owner") != before.owner:
            _say(f"{self.local()}  worker  owner now: {ticket.get('owner') or 'unassigned'}")
        self._seen[ticket_id] = _Snapshot(len(articles), tags, ticket.get("owner"))

    def script(self) -> None:
        sb = self.sandbox
        fieldmap = self.fieldmap
        fields = fieldmap.fields
        names = self.macro_names
        original = next(t for t in sb.tickets.values() if t["title"] == DEMO_TICKET)
        oid = original["id"]
        _say(
            f'A residential customer, Sean Walsh, has ticket #{original["number"]} "{DEMO_TICKET}".'
        )
        _say("")
        self.at("09:00")
        self.agent(
            "Alice takes Sean's call, fills in reason (outage beyond SLA), segment and the "
            "callback (11:00) and runs the Escalate macro",
            lambda: (
                sb.agent_update(
                    oid,
                    ALICE,
                    **{
                        fields.reason: "outage_beyond_sla",
                        fields.segment: "residential",
                        fields.callback_at: f"{DEMO_DAY}T11:00:00.000Z",
                    },
                ),
                self.macro(oid, ALICE, names.escalate),
            ),
        )
        self.tick()
        self.at("10:15")
        self.agent(
            'Sean emails again: "Still nothing, I am losing business"',
            lambda: sb.seed_customer_email(
                oid, "Still nothing, I am losing business.", subject="Re: broadband down"
            ),
        )
        self.at("10:40")
        self.agent(
            "Sean emails a photo of his router lights (router.jpg)",
            lambda: sb.seed_customer_email(
                oid,
                "<p>Photo attached. <b>All red.</b><script>alert(1)</script></p>",
                subject="Re: broadband down - photo",
                content_type="text/html",
                attachments=[("router.jpg", "image/jpeg", b"\xff\xd8\xff\xe0demo-jpeg")],
            ),
        )
        self.tick()
        esc = self.escalation_id
        assert esc is not None
        self.at("10:50")
        self.agent(
            "Alice calls Sean back as agreed and logs the call (the callback and the morning "
            "contact call of the communication plan)",
            lambda: sb.agent_article(
                oid, ALICE, "Called Sean back: engineer visit being arranged.", type="phone",
                internal=False,
            ),
        )  # fmt: skip
        self.at("11:30")
        self.agent(
            "Sean calls: no progress; Alice logs the call and runs \"Escalation: level 2\"",
            lambda: (
                sb.agent_article(
                    oid, ALICE, "Sean called: no progress, wants it escalated.", type="phone",
                    internal=False,
                ),
                self.macro(esc, ALICE, self.level_macro(2)),
            ),
        )  # fmt: skip
        self.tick()
        self.at("12:10")
        self.agent(
            "Alice logs a call with BT's SMC agent (the Carrier contact text module, ::carrier)",
            lambda: sb.agent_article(
                esc,
                ALICE,
                self.carrier_note(
                    carrier="BT",
                    stage="agent",
                    forename="Dave",
                    location="Glasgow",
                    user_id="BT-4411",
                    time_of_call="12:05",
                ),
            ),
        )
        self.at("13:05")
        self.agent(
            "Alice logs a call with BT's team leader, forgetting the location",
            lambda: sb.agent_article(
                esc,
                ALICE,
                self.carrier_note(
                    carrier="BT", stage="team leader", forename="Priya", time_of_call="13:00"
                ),
            ),
        )
        self.tick()
        self.at("14:00")
        self.agent(
            'Jane Doe (duty manager) runs "Escalation: level 3"',
            lambda: self.macro(esc, DUTY_MANAGER, self.level_macro(3)),
        )
        self.tick()
        self.at("14:20")
        self.agent(
            "Jane calls Sean with the news and logs the call",
            lambda: sb.agent_article(
                esc, DUTY_MANAGER, "Called Sean: BT escalated on our side.", type="phone",
                internal=False,
            ),
        )  # fmt: skip
        self.at("15:00")
        self.agent(
            'BT\'s team leader still has no answer: Alice runs "Escalation: carrier route failed"',
            lambda: self.macro(esc, ALICE, names.route_failed),
        )
        self.tick()
        self.at("15:30")
        self.tick()
        self.at("16:30")
        self.agent(
            'BT repaired the fibre: Jane fills in the RFO and runs "Escalation: resolved"',
            lambda: (
                sb.agent_update(
                    esc,
                    DUTY_MANAGER,
                    **{fields.rfo: "Fibre cut at the street cabinet; BT spliced it at 16:10."},
                ),
                self.macro(esc, DUTY_MANAGER, names.resolved),
            ),
        )
        self.tick()
        self.clock.advance(timedelta(days=2, hours=18, minutes=15))  # day 3 of parking

        def confirmed() -> None:
            sb.agent_article(
                esc,
                ALICE,
                "Confirmation call: Sean's line has been fine for three days.",
                type="phone",
                internal=False,
            )
            self.macro(esc, ALICE, names.confirmed)

        self.agent(
            "Friday, day 3 of parking: Alice makes the final confirmation call; Sean is "
            "satisfied: \"Escalation: customer confirmed\"",
            confirmed,
        )  # fmt: skip
        self.tick()

    def summary(self) -> None:
        sb = self.sandbox
        esc = self.escalation_id
        assert esc is not None
        ticket = sb.ticket(esc)
        copies = [a for a in sb.articles_of(esc) if "copied from ticket" in a["body"]]
        watchers = sb.subscribers_of(esc)
        _say("")
        _say(
            f"Escalation ticket #{ticket['number']}: "
            f"level {ticket[self.fieldmap.fields.level]}, "
            f"owner {ticket['owner']}, {len(copies)} customer emails copied, "
            f"{len(watchers)} subscribed, tags {', '.join(sorted(sb.tags_of(esc)))}."
        )
        for copy in self.store.archives():
            _say(f"Hard copy: {copy.path}/escalation.pdf (and record.json, manifest.json).")
        worker_mail = len(sb.outbox) - self.outbox_before
        _say(f"Mail Zammad sent because of the worker: {worker_mail}.")
        macros = [r for r in sb.requests if r[:2] == ("POST", "/api/v1/tickets/mass_macro")]
        applied = sum(1 for r in macros if r[2] == 200)
        _say(f"Macros the agents ran (provisioned by escalations provision): {applied} applied.")
        state_file = self.state_dir / "sandbox-state.json"
        state_file.write_text(
            json.dumps(
                {
                    "tickets": sb.tickets,
                    "articles": {tid: sb.articles_of(tid) for tid in sb.tickets},
                    "outbox": sb.outbox,
                },
                indent=2,
                default=str,
            ),
            encoding="utf-8",
        )
        _say("")
        _say("Where to look:")
        _say(f"  ESCALATIONS_STATE_DIR={self.state_dir} {_program()} status")
        _say(f"  the sandbox's tickets, articles and outbox: {state_file}")
        _say("  a live sandbox to try the worker yourself: escalations sandbox")


def _program() -> str:
    """How the user ran us, so the hint can be pasted as it is (``.venv/bin/escalations``)."""
    invoked = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    return str(invoked) if invoked is not None and invoked.name == "escalations" else "escalations"


def run_demo(*, state_dir: Path | None) -> int:
    configure_logging("WARNING")
    directory = state_dir or Path(tempfile.mkdtemp(prefix="escalations-demo-"))
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (directory / "escalations.sqlite3").exists():
        raise ConfigError(f"{directory}: already holds a store; give the demo an empty directory")
    demo = _Demo(directory)
    try:
        _say(
            f"Demo: the escalation worker against a Zammad-compatible sandbox at {demo.server.url}"
        )
        _say(f"(accelerated time: the scripted day of {DEMO_DAY}, Europe/London)")
        _say("")
        demo.script()
        demo.summary()
    finally:
        demo.close()
    return 0
