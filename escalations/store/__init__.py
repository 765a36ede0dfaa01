"""The durable store: what the worker has done (``base.Store``) and its SQLite implementation."""

from escalations.store.base import (
    LAST_SUCCESSFUL_POLL,
    Cursor,
    Duplicate,
    JobRun,
    StatusSummary,
    Store,
    Transaction,
)
from escalations.store.sqlite import SqliteStore

__all__ = [
    "LAST_SUCCESSFUL_POLL",
    "Cursor",
    "Duplicate",
    "JobRun",
    "SqliteStore",
    "StatusSummary",
    "Store",
    "Transaction",
]
