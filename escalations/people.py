"""Who is who in the helpdesk for one pass: the users behind the process roles, their names,
who owns an escalation at each level and who watches it. Cached per pass, so a pass asks the
helpdesk about each person at most once. What access makes someone an owner or a watcher is
the binding's to say."""

from __future__ import annotations

import logging

from connector.base import HelpdeskAdapter, User
from connector.errors import NotFound
from escalations.bindings.base import HelpdeskBinding
from escalations.profile import ProcessProfile

log = logging.getLogger(__name__)

UNKNOWN = "(unknown)"


class People:
    def __init__(
        self, adapter: HelpdeskAdapter, binding: HelpdeskBinding, profile: ProcessProfile
    ) -> None:
        self.adapter = adapter
        self.binding = binding
        self.profile = profile
        self._by_id: dict[int, User | None] = {}
        self._by_ref: dict[str, User | None] = {}
        self._me: User | None = None
        self._warned: set[str] = set()

    @property
    def me(self) -> User:
        if self._me is None:
            self._me = self.adapter.me()
        return self._me

    def user(self, user_id: int | None) -> User | None:
        """A user by id; ``None`` for nobody (the helpdesk itself) or a user that is gone."""
        if user_id is None:
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
        ref = self.binding.person_ref(role)
        if not ref:
            return None
        user = self.by_ref(ref)
        if user is None and role not in self._warned:
            self._warned.add(role)
            log.warning("people.unknown role=%s user=%s", role, ref)
        return user

    def name(self, user_id: int | None) -> str:
        user = self.user(user_id)
        return user.display_name if user else UNKNOWN

    def placeholder_customer(self) -> User | None:
        ref = self.binding.placeholder_customer_ref
        return self.by_ref(ref) if ref else None

    def can_own(self, user: User | None) -> bool:
        return user is not None and self.binding.can_own(user)

    def can_watch(self, user: User | None) -> bool:
        return user is not None and self.binding.can_watch(user)

    # -- per level -------------------------------------------------------------------------
    def owner_for_level(
        self,
        level: int,
        *,
        flagged_by: int | None,
        current: int | None,
        history: tuple[int, ...],
    ) -> int | None:
        """The owner at a level: the level's role, or the flagging agent until a role has
        taken ownership (a role that owns keeps it for the rest of the life-cycle, as level 2
        does). ``current`` when nobody eligible can be found (then a new ticket stays
        unassigned)."""
        role = self.profile.owner_role(level)
        if role is None:
            if any(self.profile.owner_role(lv) for lv in history):
                return current
            user = self.user(flagged_by)
        else:
            user = self.for_role(role)
        if user is not None and self.can_own(user):
            return user.id
        if user is not None:
            log.warning(
                "escalation.owner_not_eligible user=%s group=%s",
                user.login,
                self.binding.escalation_group,
            )
        return current

    def watchers_for_level(self, level: int) -> list[tuple[User, str]]:
        """The people a level subscribes who may watch escalation tickets, each with the role
        (its name) they are subscribed in."""
        found: dict[int, tuple[User, str]] = {}
        for role in self.profile.roles_for_level(level):
            user = self.for_role(role)
            if user is not None and self.can_watch(user) and user.id not in found:
                found[user.id] = (user, self.profile.roles[role].name)
        return list(found.values())
