"""Errors raised by helpdesk adapters, mapped from HTTP in one place (``connector/http.py``).

::

    HelpdeskError
    ├─ TransientError          timeouts before send, 502/503/504 → retry later
    │  ├─ RateLimited          .retry_after: float
    │  └─ Maintenance          403 "Maintenance mode enabled!" → wait, retry later
    ├─ AmbiguousWrite          the write may have been applied → reconcile by marker
    ├─ AuthError               never retried
    │  ├─ Unauthorized         401: the token is wrong, expired or its user inactive → stop
    │  │  └─ Misconfigured     not the token: another credential or the helpdesk's setup → stop
    │  └─ Forbidden            403: this token may not do this one thing → fail that write
    ├─ NotFound                404
    ├─ Conflict                409
    ├─ Rejected                400/422 (and other permanent 4xx/5xx) → effect marked failed
    ├─ RedirectError           a 3xx on a write, or a redirect to another host
    └─ TooLarge                a download exceeded its byte cap

``SetupError`` (a ``ValueError``, not a ``HelpdeskError``) says an adapter cannot be built as
configured: a refused URL, a CA bundle that is not there. The application layer reports it as
a configuration error (exit 78).

Exceptions carry ``status``, ``method``, the ``path`` without its query string and the
request id. They never carry header values; any body excerpt is redacted and cut to 1 KiB.
"""

from __future__ import annotations

BODY_EXCERPT_LIMIT = 1024


class HelpdeskError(Exception):
    """Base of every error an adapter raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        request_id: str | None = None,
        body_excerpt: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.method = method
        self.path = path
        self.request_id = request_id
        self.body_excerpt = body_excerpt[:BODY_EXCERPT_LIMIT] if body_excerpt else None
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = " ".join(p for p in (self.method, self.path) if p)
        parts = [self.message]
        if where:
            parts.append(f"({where}")
            parts[-1] += f" -> {self.status})" if self.status is not None else ")"
        if self.request_id:
            parts.append(f"request-id={self.request_id}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, "
            f"method={self.method!r}, path={self.path!r})"
        )


class TransientError(HelpdeskError):
    """The helpdesk could not be reached or was briefly unavailable; try again later."""


class RateLimited(TransientError):
    def __init__(self, message: str, *, retry_after: float = 0.0, **kw: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class Maintenance(TransientError):
    """The helpdesk is in maintenance mode (Zammad answers 403 "Maintenance mode enabled!" to
    everyone without ``admin.maintenance``): nothing is wrong with the token; try later."""


class AmbiguousWrite(HelpdeskError):
    """A non-idempotent write may or may not have been applied; reconcile by marker."""


class AuthError(HelpdeskError):
    """401/403: the token is wrong, expired or lacks a permission. Never retried."""


class Unauthorized(AuthError):
    """401: the helpdesk does not accept the token at all; nothing else can work either."""


class Misconfigured(Unauthorized):
    """Refused for a reason that is not the token: the helpdesk side or another of the worker's
    credentials is set up wrong (a database password, a plugin without its bot agent). Nothing
    else can work either, so it stops the worker like ``Unauthorized``; the message names what
    to fix."""


class Forbidden(AuthError):
    """403: the token is accepted but may not do this (group access, a permission it lacks)."""


class OutOfReach(Forbidden):
    """403 on an object the account can no longer even read (an agent moved the ticket to a
    group the account has no access to). Not a refusal of the write itself: what was to be
    done with the object waits until it is back in reach."""


class NotFound(HelpdeskError):
    pass


class Conflict(HelpdeskError):
    pass


class Rejected(HelpdeskError):
    """The helpdesk refused this payload for good (400/422 and similar)."""


class AppliedNotAsAsked(Rejected):
    """The helpdesk took the write (a 2xx), but its answer shows it did not do what was asked
    (an owner reset to unassigned, a field dropped): unlike a refusal, something was applied,
    a note carried by the update included."""


class RedirectError(HelpdeskError):
    pass


class TooLarge(HelpdeskError):
    """A download grew past its byte cap; ``size_seen`` is how far it got."""

    def __init__(self, message: str, *, size_seen: int = 0, **kw: object) -> None:
        self.size_seen = size_seen
        super().__init__(message, **kw)  # type: ignore[arg-type]


class SetupError(ValueError):
    """An adapter or HTTP client cannot be built as configured (refused URL, missing CA bundle).
    Not a helpdesk failure: nothing was sent."""
