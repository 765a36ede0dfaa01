"""The nightly reconciliation's domain side: the findings (``findings``), the marks a helpdesk
is searched by (``marks``), and the report's files (``outputs``, ``render``). The job that
finds them is ``jobs.reconcile``."""

from __future__ import annotations

from escalations.reconcile.findings import (
    DayDuties,
    Finding,
    FindingKind,
    Repair,
    RepairOutcome,
    Report,
)

__all__ = ["DayDuties", "Finding", "FindingKind", "Repair", "RepairOutcome", "Report"]
