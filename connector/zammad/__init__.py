"""The Zammad adapter: ``HelpdeskAdapter`` over Zammad's REST API (``adapter.py``, whose
docstring holds the table of Zammad's traps and how each is handled), and Zammad's admin API
for provisioning (``admin.py``: ``ZammadAdmin``, plain Zammad JSON)."""

from __future__ import annotations

from connector.zammad.adapter import (
    BODY_MAX_CHARS,
    SEARCH_PAGE_MAX,
    STANDARD_TICKET_KEYS,
    UNASSIGNED_USER_ID,
    ZammadAdapter,
    utc_ms,
)
from connector.zammad.admin import ADMIN_KINDS, ZammadAdmin

__all__ = [
    "ADMIN_KINDS",
    "BODY_MAX_CHARS",
    "SEARCH_PAGE_MAX",
    "STANDARD_TICKET_KEYS",
    "UNASSIGNED_USER_ID",
    "ZammadAdapter",
    "ZammadAdmin",
    "utc_ms",
]
