"""The one place that turns settings into a working installation: the adapter (chosen by
``ESCALATIONS_HELPDESK``), its binding and field map, the store (chosen by the scheme of
``ESCALATIONS_DATABASE_URL``), the outbox, the lifecycle, the effect kinds with their targets,
the executor and the job context — built in one pass, each part from the ones before it.
Shared by ``escalations run``, ``status``, the demo and the tests, so they all run the same
wiring."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.errors import SetupError
from connector.http import HttpClient, HttpPolicy
from connector.osticket import DatabaseConfig, OsTicketAdapter, ReadOnlyDatabase
from connector.redaction import SECRETS
from connector.zammad import ZammadAdapter
from escalations.bindings.base import HelpdeskBinding
from escalations.bindings.osticket import NoteNeedsAddNote, OsTicketBinding, OsTicketFieldMap
from escalations.bindings.zammad import ZammadBinding, ZammadFieldMap
from escalations.clock import Clock
from escalations.effects.base import EffectKind, Registry
from escalations.effects.executor import Executor, new_worker_id
from escalations.effects.helpdesk import NOTE, helpdesk_kinds
from escalations.effects.outbox import Outbox
from escalations.errors import ConfigError
from escalations.faults import FaultPoints, NoFaults
from escalations.lifecycle import Lifecycle
from escalations.mappings import Mappings, load_mappings
from escalations.settings import Settings
from escalations.store.base import Store
from escalations.store.sqlite import SqliteStore
from jobs.context import JobContext
from jobs.worker import Job, Liveness, Worker

if TYPE_CHECKING:
    import requests

    from connector.base import HelpdeskAdapter


def open_store(settings: Settings, clock: Clock) -> SqliteStore:
    path = settings.database_path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return SqliteStore(path, clock)


def open_configured_store(settings: Settings, clock: Clock) -> Store:
    """The store ``ESCALATIONS_DATABASE_URL`` names: PostgreSQL for ``postgresql://…``
    (``escalations.store.postgres``), else the SQLite file (``open_store``). The commands
    open their store here (``escalations.app.commands._open_store``)."""
    if settings.database_is_postgresql:
        from escalations.store.postgres import PostgresStore

        return PostgresStore(settings.database_url, clock)
    return open_store(settings, clock)


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
    settings: Settings,
    clock: Clock,
    session: requests.Session | None = None,
    *,
    progress: Callable[[], None] | None = None,
) -> HelpdeskAdapter:
    """The adapter for ``ESCALATIONS_HELPDESK``, built from its URL, token and HTTP policy
    (``progress``: see ``HttpClient``).

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
    if settings.helpdesk == "osticket":
        return build_osticket_adapter(settings, clock, token, session)
    try:
        client = HttpClient(
            settings.helpdesk_url,
            {"Authorization": f"Token token={token}"},
            http_policy(settings),
            clock,
            session=session,
            progress=progress,
        )
    except SetupError as exc:
        raise ConfigError(f"ESCALATIONS_HELPDESK_URL: {exc}") from None
    return ZammadAdapter(client, clock=clock)


def build_osticket_adapter(
    settings: Settings, clock: Clock, api_key: str, session: requests.Session | None = None
) -> OsTicketAdapter:
    """The osTicket adapter: the API key (``ESCALATIONS_HELPDESK_TOKEN``) for the API, the
    ``ESCALATIONS_HELPDESK_DB_*`` account for reads.

    Raises:
        ConfigError: no database user, or the URL is refused.
    """
    if not settings.helpdesk_db_user:
        raise ConfigError(
            "ESCALATIONS_HELPDESK_DB_USER: missing (osTicket is read through a read-only "
            "database account; see docs/osticket.md)"
        )
    password = settings.helpdesk_db_password
    policy = http_policy(settings)
    db = ReadOnlyDatabase(
        DatabaseConfig(
            host=settings.helpdesk_db_host,
            port=settings.helpdesk_db_port,
            database=settings.helpdesk_db_name,
            user=settings.helpdesk_db_user,
            password=password.get_secret_value() if password is not None else "",
            connect_timeout=settings.http_connect_timeout,
            read_timeout=settings.http_read_timeout,
            table_prefix=settings.helpdesk_db_table_prefix,
        ),
        clock,
    )
    try:
        return OsTicketAdapter(settings.helpdesk_url, api_key, db, policy, clock, session=session)
    except SetupError as exc:
        raise ConfigError(f"ESCALATIONS_HELPDESK_URL: {exc}") from None


def build_binding(adapter: HelpdeskAdapter, mappings: Mappings) -> HelpdeskBinding:
    """The binding for the adapter's helpdesk, from its field map and capabilities.

    Raises:
        ConfigError: the mappings are another helpdesk's (a ``zammad.toml`` read for an
            osTicket adapter would build a binding that never sees a flag).
    """
    if mappings.helpdesk_name != adapter.name:
        raise ConfigError(
            f"ESCALATIONS_HELPDESK: the adapter is {adapter.name!r} but the mappings loaded "
            f"are {mappings.helpdesk_name!r}'s ({mappings.helpdesk_file.name})"
        )
    if mappings.helpdesk_name == "zammad" and isinstance(mappings.helpdesk, ZammadFieldMap):
        return ZammadBinding(mappings.helpdesk, mappings.profile, adapter.capabilities)
    if mappings.helpdesk_name == "osticket" and isinstance(mappings.helpdesk, OsTicketFieldMap):
        return OsTicketBinding(mappings.helpdesk, mappings.profile, adapter.capabilities)
    raise ConfigError(f"ESCALATIONS_HELPDESK: no binding for {mappings.helpdesk_name!r}")


def _kinds_for(
    binding: HelpdeskBinding, adapter: HelpdeskAdapter, store: Store, lifecycle: Lifecycle
) -> list[EffectKind[Any]]:
    """The helpdesk effect kinds; on osTicket the note kind never mails a note in
    (``escalations.bindings.osticket.effects``)."""
    kinds = helpdesk_kinds(adapter, store, lifecycle)
    if binding.name == "osticket":
        note = NoteNeedsAddNote(adapter, store, lifecycle)
        kinds = [note if kind.name == NOTE else kind for kind in kinds]
    return kinds


@dataclass(frozen=True)
class Installation:
    """Everything a worker needs, wired: the job context and the executor."""

    ctx: JobContext
    executor: Executor

    def worker(self, jobs: Sequence[Job] | None = None, liveness: Liveness | None = None) -> Worker:
        return Worker(self.ctx, jobs, executor=self.executor, liveness=liveness)


def build(
    settings: Settings,
    clock: Clock,
    *,
    adapter: HelpdeskAdapter,
    store: Store,
    mappings: Mappings | None = None,
    faults: FaultPoints | None = None,
    stop: threading.Event | None = None,
    worker_id: str | None = None,
) -> Installation:
    """Wire an installation around ``adapter`` and ``store`` (built by the caller, who owns
    their life-cycle)."""
    mappings = mappings or load_mappings(Path(settings.mappings_dir), settings.helpdesk)
    faults = faults or NoFaults()
    stop = stop or threading.Event()
    binding = build_binding(adapter, mappings)
    registry = Registry()
    outbox = Outbox(store, registry, clock, faults)
    lifecycle = Lifecycle(store, outbox, binding, mappings.profile)
    registry.add(*_kinds_for(binding, adapter, store, lifecycle))
    executor = Executor(
        store,
        registry,
        outbox,
        clock,
        worker_id=worker_id or new_worker_id(),
        faults=faults,
        stop_event=stop,
        settle=timedelta(seconds=settings.write_settle_seconds),
    )
    ctx = JobContext(
        settings=settings,
        clock=clock,
        store=store,
        adapter=adapter,
        binding=binding,
        mappings=mappings,
        outbox=outbox,
        lifecycle=lifecycle,
        faults=faults,
        stop=stop,
    )
    return Installation(ctx=ctx, executor=executor)
