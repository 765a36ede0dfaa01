"""The PostgreSQL store: the same store protocol as the SQLite one (``escalations.store.base``),
for a store that several workers share. Chosen by a ``postgresql://`` database URL
(``escalations.app.wiring.open_store``); connections, credentials and migrations in ``_db``,
one module per concern as on SQLite (``records``, ``outbox``, ``sync_state``,
``known_articles``, ``runlog``).

**Isolation: one write lock, READ COMMITTED.** Every write transaction starts by taking a
transaction-scoped advisory lock (``pg_advisory_xact_lock``) that all workers on the database
share, and holds it until it commits or rolls back. This is PostgreSQL's equivalent of the
SQLite store's ``BEGIN IMMEDIATE``: the jobs' code reads what a decision depends on inside the
transaction that records it (parking's next period, a duty's state, an escalation before its
update) and was written for one writer at a time. Under the lock each statement of a READ
COMMITTED transaction sees every commit made before it, so that reasoning holds unchanged.
The alternative, ``SERIALIZABLE``, would make such conflicts abort one transaction, and the
callers' ``with store.transaction()`` blocks cannot be replayed by the store. No helpdesk
call is made inside a transaction, so write transactions are short and the lock is held for
milliseconds; what runs in parallel on several workers is the helpdesk work between them.
The lock also makes identity values appear in commit order: an effect committed later never
has a smaller id than one already visible, which the executor's sweep in id order relies on
(``claim_next(after_id=…)``).
A session stuck inside a transaction (a paused process) is ended by the server after
``idle_in_transaction_session_timeout`` (60 s), which releases the lock. ``BEGIN`` names
READ COMMITTED, so a database or role default (``default_transaction_isolation``) cannot
give a transaction a snapshot older than the write lock.

**Conflicts: retried by the worker, not here.** Under the write lock the store's own
transactions do not conflict with each other, but a session outside it can still make the
server roll one back: a deadlock (40P01) with an admin's or a migration's session that
holds a row or table lock and waits for the write lock, or a serialization failure (40001)
from a session the store does not control. ``transaction`` then rolls back and raises
``StoreConflict`` (``_db.store_error``). It is not replayed here, because a
``with store.transaction()`` block cannot be run again by the store: the Python code in it
has run and may have decided things from what it read. What can be replayed is the job's
pass: jobs are level-triggered and effects look before they write, so the worker
(``jobs.worker.Worker.run_job``) runs the pass again, up to ``CONFLICT_RETRIES`` times with
a random pause, and only then records a failed run. (Where a job itself catches the failure
of one item, the poll's ticket or the plan's escalation, a conflict there holds that item
for the next pass and is logged as its failure.) A lost server is ``StoreUnavailable``
and is waited for the same way (``_db``'s docstring says how each error is told apart).

Claims of effects (``outbox``) are one ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP
LOCKED)`` statement with the prerequisite (``after``) check, carrying the worker id and a
lease expiry, as on SQLite. Leadership of the poll and of each timed job is the lease row
``acquire_lease`` takes (one statement: taken only when free, expired or already the
holder's).

There is no single-host lock: several workers may share the store, so ``acquire_lock``
does not take the store away from the others, nor release their claims or leases. A dead
worker's in-flight effects are taken over when their lease expires, its leadership when the
lease row does.
"""

from __future__ import annotations

from escalations.clock import Clock
from escalations.store.postgres._db import (
    CREDENTIAL_NAME,
    Migration,
    is_postgres_url,
    load_migrations,
    probe_schema,
    redacted_url,
)
from escalations.store.postgres.known_articles import KnownArticlesMixin
from escalations.store.postgres.outbox import OutboxMixin
from escalations.store.postgres.records import EscalationRecordsMixin
from escalations.store.postgres.runlog import RunLogMixin
from escalations.store.postgres.sync_state import SyncStateMixin


class PostgresStore(
    EscalationRecordsMixin, OutboxMixin, SyncStateMixin, KnownArticlesMixin, RunLogMixin
):
    def __init__(self, url: str, clock: Clock) -> None:
        super().__init__(url, clock)

    def acquire_lock(self, *, worker: str = "") -> None:
        """Nothing to take: the store is shared (see the module docstring)."""

    def release_lock(self) -> None:
        """Nothing to release."""


__all__ = [
    "CREDENTIAL_NAME",
    "Migration",
    "PostgresStore",
    "is_postgres_url",
    "load_migrations",
    "probe_schema",
    "redacted_url",
]
