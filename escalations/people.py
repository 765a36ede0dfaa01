"""Who is who in the helpdesk for one pass: the users behind roles, their display names, and
whether each may own (full access) or watch (read access) the escalation group. Cached per
pass, so a pass asks the helpdesk about each person at most once."""

from __future__ import annotations

import logging

from connector.base import HelpdeskAdapter, User
from connector.errors import NotFound
from escalations.fieldmap import ZammadFieldMap

log = logging.getLogger(__name__)


class People:
    def __init__(self, adapter: HelpdeskAdapter, fieldmap: ZammadFieldMap) -> None:
        self.adapter = adapter
        self.fieldmap = fieldmap
        self._by_id: dict[int, User | None] = {}
        self._by_ref: dict[str, User | None] = {}
        self._me: User | None = None

    @property
    def me(self) -> User:
        if self._me is None:
            self._me = self.adapter.me()
        return self._me

    def user(self, user_id: int | None) -> User | None:
        if user_id is None or user_id <= 1:  # Zammad's user 1 is "nobody"
            return None
        if user_id not in self._by_id:
            try:
                self._by_id[user_id] = self.adapter.get_user(user_id)
            except NotFound:
                self._by_id[user_id] = None
        return self._by_id[user_id]

    def by_ref(self, login_or_email: str) -> User | None:
        ref = login_or_email.strip().lower()
        if ref not in self._by_ref:
            user = self.adapter.find_user(ref)
            self._by_ref[ref] = user
            if user is not None:
                self._by_id.setdefault(user.id, user)
        return self._by_ref[ref]

    def for_role(self, role: str) -> User | None:
        ref = self.fieldmap.people.get(role)
        if not ref:
            return None
        user = self.by_ref(ref)
        if user is None:
            log.warning("people.unknown role=%s user=%s", role, ref)
        return user

    def name(self, user_id: int | None) -> str:
        user = self.user(user_id)
        return user.display_name if user else "(unknown)"

    def placeholder_customer(self) -> User | None:
        ref = self.fieldmap.customer.placeholder
        return self.by_ref(ref) if ref else None

    @staticmethod
    def can_own(user: User | None, group: str) -> bool:
        return bool(
            user and user.active and user.is_agent and "full" in user.group_access.get(group, ())
        )

    @staticmethod
    def can_watch(user: User | None, group: str) -> bool:
        access = user.group_access.get(group, frozenset()) if user else frozenset()
        return bool(user and user.active and user.is_agent and access & {"read", "full"})
