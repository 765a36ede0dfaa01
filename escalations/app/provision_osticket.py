"""``escalations provision`` on osTicket: the admin's checklist of everything the process needs
in osTicket, computed from ``mappings/osticket.toml`` and compared with what osTicket has.

osTicket's API and the escalation-api plugin cannot create help topics, forms, fields,
statuses, agents, plugins or API keys, and the worker never writes SQL: so this command writes
nothing, with or without ``--dry-run``. It reads through the worker's read-only database
account (and, with the plugin enabled, calls its ping), then prints one line per object:
``ok`` when it is as wanted, else ``todo`` with what differs and the exact step in osTicket's
admin panel (``/scp``) or on its database server. The comparisons are ``check --live``'s
(``escalations.bindings.osticket.setup_check``). Exit 0 when every step is done, 78 while one
remains; run it again after the steps.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from connector.errors import AuthError
from escalations.bindings.osticket import setup_check
from escalations.clock import Clock, SystemClock
from escalations.errors import EX_CONFIG, ConfigError
from escalations.mappings import load_mappings
from escalations.settings import Settings


def provision_osticket(
    args: argparse.Namespace, settings: Settings, *, clock: Clock | None = None
) -> int:
    from connector.osticket import OsTicketAdapter
    from escalations.app.wiring import build_adapter

    if getattr(args, "webhook_url", None):
        raise ConfigError("--webhook-url: Zammad's only (osTicket has no webhook to create)")
    if getattr(args, "force", False):
        raise ConfigError("--force: Zammad's only (provision writes nothing in osTicket)")
    mappings = load_mappings(Path(settings.mappings_dir), "osticket")
    adapter = build_adapter(settings, clock or SystemClock())
    assert isinstance(adapter, OsTicketAdapter)
    say("provision: reading osTicket's setup through the read-only database account …")
    try:
        steps = setup_check.plan_for(adapter, mappings, worker_ip=source_address(settings))
    except AuthError as exc:
        raise ConfigError(f"{exc.message} (the account: docs/osticket.md §1)") from None
    finally:
        adapter.db.close()
    for step in steps:
        print(step.line())  # noqa: T201
    left = [s for s in steps if not s.done]
    done = len(steps) - len(left)
    if not left:
        print(f"provision: osTicket: all {done} in place; nothing to do")  # noqa: T201
        return 0
    print(  # noqa: T201
        f"provision: osTicket: {done} of {len(steps)} in place, {len(left)} step(s) left for an "
        "admin (above; osTicket's API cannot make them, and nothing was written); run "
        "provision again after them"
    )
    return EX_CONFIG


def say(line: str) -> None:
    print(line, file=sys.stderr)  # noqa: T201


def source_address(settings: Settings) -> str | None:
    """The address this machine sends from towards osTicket (what a key must be bound to
    when nothing between rewrites it); ``None`` when the route cannot be found. A UDP
    socket's ``connect`` only picks the route: nothing is sent."""
    parts = urlsplit(settings.helpdesk_url)
    host = parts.hostname
    if not host:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            return str(sock.getsockname()[0])
    except OSError:
        return None
