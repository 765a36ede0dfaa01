"""Who is calling: a user, the token's permission subset, and the postmaster flag for mail
that arrives through a channel (scenario helpers and seeding)."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.records import Ticket, User
from sandbox.state import SandboxState, grants


@dataclass(frozen=True)
class Actor:
    """Who is calling: the user (after any ``From`` impersonation) and, for token requests,
    the token's permission subset. Helpers act with ``token_permissions=None``."""

    user: User
    token_permissions: tuple[str, ...] | None = None
    postmaster: bool = False
    """Mail arriving through a channel (scenario helpers, seeding): no permission checks and
    no agent/customer overrides; mention anchors in the body are ignored."""

    def has(self, state: SandboxState, permission: str) -> bool:
        if self.postmaster:
            return True
        if not state.user_has(self.user, permission):
            return False
        return self.token_permissions is None or grants(self.token_permissions, permission)

    def is_agent(self, state: SandboxState) -> bool:
        return self.has(state, "ticket.agent")

    def is_admin(self, state: SandboxState) -> bool:
        return self.has(state, "admin")

    def group_access(self, state: SandboxState, group_id: int, level: str) -> bool:
        if self.postmaster:
            return True
        return self.is_agent(state) and state.group_access(self.user, group_id, level)

    def may(self, state: SandboxState, ticket: Ticket, level: str) -> bool:
        """Ticket policy: agents by group access; customers on their own tickets."""
        if self.group_access(state, ticket.group_id, level):
            return True
        return self.has(state, "ticket.customer") and ticket.customer_id == self.user.id
