"""The osTicket binding and its field map (``mappings/osticket.toml``)."""

from escalations.bindings.osticket.binding import OsTicketBinding
from escalations.bindings.osticket.effects import NoteNeedsAddNote
from escalations.bindings.osticket.field_map import OsTicketFieldMap

__all__ = ["NoteNeedsAddNote", "OsTicketBinding", "OsTicketFieldMap"]
