"""The findings of one run as they are found: one per (kind, subject), whichever check finds
it first."""

from __future__ import annotations

from datetime import datetime

from escalations.reconcile.findings import Finding, FindingKind


class Found:
    def __init__(self) -> None:
        self._by_subject: dict[tuple[FindingKind, str], Finding] = {}
        self.not_checked: list[str] = []

    def add(
        self,
        kind: FindingKind,
        subject: str,
        detail: str,
        *,
        escalation: str | None = None,
        ticket_id: int | None = None,
        ticket_number: str | None = None,
        other_ticket_id: int | None = None,
        since: datetime | None = None,
    ) -> None:
        self._by_subject.setdefault(
            (kind, subject),
            Finding(
                kind=kind,
                subject=subject,
                detail=detail,
                escalation=escalation,
                ticket_id=ticket_id,
                ticket_number=ticket_number,
                other_ticket_id=other_ticket_id,
                since=since,
            ),
        )

    def has(self, kind: FindingKind, subject: str) -> bool:
        return (kind, subject) in self._by_subject

    def skipped(self, what: str) -> None:
        if what not in self.not_checked:
            self.not_checked.append(what)

    def findings(self) -> tuple[Finding, ...]:
        order = list(FindingKind)
        return tuple(
            sorted(self._by_subject.values(), key=lambda f: (order.index(f.kind), f.subject))
        )
