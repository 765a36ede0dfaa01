"""The reconciliation's marks (``escalations.reconcile.marks``) of the configured helpdesk:
each helpdesk's binding package builds its own from its field map."""

from __future__ import annotations

from connector.base import Capability
from escalations.errors import ConfigError
from escalations.mappings import Mappings
from escalations.reconcile.marks import ReconcileMarks


def marks_for(mappings: Mappings, capabilities: frozenset[Capability]) -> ReconcileMarks:
    """The marks of ``mappings.helpdesk_name``; ``ConfigError`` for a helpdesk with none."""
    if mappings.helpdesk_name == "zammad":
        from escalations.bindings.zammad.fieldmap import ZammadFieldMap
        from escalations.bindings.zammad.marks import reconcile_marks

        if isinstance(mappings.helpdesk, ZammadFieldMap):
            return reconcile_marks(mappings.helpdesk, mappings.profile, capabilities)
    if mappings.helpdesk_name == "osticket":
        from escalations.bindings.osticket.field_map import OsTicketFieldMap
        from escalations.bindings.osticket.marks import reconcile_marks as osticket_marks

        if isinstance(mappings.helpdesk, OsTicketFieldMap):
            return osticket_marks(mappings.helpdesk)
    raise ConfigError(f"the report knows no marks of helpdesk {mappings.helpdesk_name!r}")
