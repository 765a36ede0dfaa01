"""The osTicket 1.18 adapter: reads through a read-only database account, creates tickets and
copies mail through osTicket's core API (``adapter`` says exactly what it can and cannot do)."""

from connector.osticket._db import DatabaseConfig, DatabaseError, ReadOnlyDatabase
from connector.osticket._mail import message_id
from connector.osticket.adapter import (
    CAPABILITIES,
    MISSING_WITHOUT_PLUGIN,
    PLUGIN_CAPABILITIES,
    OsTicketAdapter,
    Unsupported,
)

__all__ = [
    "CAPABILITIES",
    "MISSING_WITHOUT_PLUGIN",
    "DatabaseConfig",
    "DatabaseError",
    "OsTicketAdapter",
    "PLUGIN_CAPABILITIES",
    "ReadOnlyDatabase",
    "Unsupported",
    "message_id",
]
