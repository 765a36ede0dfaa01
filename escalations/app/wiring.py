"""Assembles a working context from settings: mappings, store, adapter, effects. Shared by
``escalations run``, ``status``, ``demo`` and the tests, so they all run the same wiring."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from connector.errors import SetupError
from connector.http import HttpClient, HttpPolicy
from connector.redaction import SECRETS
from connector.zammad import ZammadAdapter
from escalations.clock import Clock
from escalations.effects import Effects
from escalations.errors import ConfigError
from escalations.faults import FaultPoints, NoFaults
from escalations.handlers import Followups, build_handlers
from escalations.mappings import Mappings, load_mappings
from escalations.settings import Settings
from escalations.store.sqlite import SqliteStore
from jobs.context import JobContext
from jobs.sync import followups_after_create, followups_after_failure

if TYPE_CHECKING:
    import requests

    from connector.base import HelpdeskAdapter


def open_store(settings: Settings, clock: Clock) -> SqliteStore:
    path = settings.database_path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return SqliteStore(path, clock)


def http_policy(settings: Settings) -> HttpPolicy:
    """The HTTP policy configured by ``ESCALATIONS_HTTP_*`` and ``ESCALATIONS_CA_BUNDLE``.

    Raises:
        ConfigError: the CA bundle is not a file.
    """
    try:
        return HttpPolicy(
            connect_timeout=settings.http_connect_timeout,
            read_timeout=settings.http_read_timeout,
            requests_per_minute=settings.http_requests_per_minute,
            burst=min(HttpPolicy.burst, settings.http_requests_per_minute),
            max_attempts=settings.http_max_attempts,
            ca_bundle=settings.ca_bundle,
        )
    except SetupError as exc:
        raise ConfigError(f"ESCALATIONS_CA_BUNDLE: {exc}") from None


def build_adapter(
    settings: Settings, clock: Clock, session: requests.Session | None = None
) -> HelpdeskAdapter:
    """The adapter for ``ESCALATIONS_HELPDESK``, built from its URL, token and HTTP policy.

    Raises:
        ConfigError: no URL or no token configured, or the URL is refused.
    """
    if not settings.helpdesk_configured:
        raise ConfigError(
            "no helpdesk connector is configured yet: set ESCALATIONS_HELPDESK_URL and the "
            "token (ESCALATIONS_HELPDESK_TOKEN or the helpdesk-token credential); see "
            "settings.example.env"
        )
    if settings.helpdesk_token is None or not settings.helpdesk_token.get_secret_value():
        raise ConfigError("ESCALATIONS_HELPDESK_TOKEN: missing (the helpdesk URL is set)")
    token = settings.helpdesk_token.get_secret_value()
    SECRETS.add(token)
    try:
        client = HttpClient(
            settings.helpdesk_url,
            {"Authorization": f"Token token={token}"},
            http_policy(settings),
            clock,
            session=session,
        )
    except SetupError as exc:
        raise ConfigError(f"ESCALATIONS_HELPDESK_URL: {exc}") from None
    return ZammadAdapter(client, clock=clock)


def build_context(
    settings: Settings,
    clock: Clock,
    *,
    adapter: HelpdeskAdapter,
    store: SqliteStore,
    mappings: Mappings | None = None,
    faults: FaultPoints | None = None,
    stop: threading.Event | None = None,
) -> JobContext:
    mappings = mappings or load_mappings(Path(settings.mappings_dir))
    faults = faults or NoFaults()
    stop = stop or threading.Event()
    ctx = JobContext(
        settings=settings,
        clock=clock,
        store=store,
        adapter=adapter,
        mappings=mappings,
        effects=None,  # type: ignore[arg-type]  # set just below; the handlers need ctx
        faults=faults,
        stop=stop,
    )
    followups = Followups(followups_after_create(ctx), followups_after_failure(ctx))
    effects = Effects(
        store,
        adapter,
        build_handlers(store, followups),
        clock,
        faults=faults,
        stop_event=stop,
        settle=timedelta(seconds=settings.write_settle_seconds),
    )
    followups.effects = effects
    ctx.effects = effects
    return ctx
