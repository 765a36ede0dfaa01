"""The Zammad binding (``binding``), its field map (``fieldmap``, ``mappings/zammad.toml``) and
``escalations check --live`` for Zammad (``livecheck``)."""

from __future__ import annotations

from escalations.bindings.zammad.binding import ZammadBinding, title_at_level
from escalations.bindings.zammad.fieldmap import ZammadFieldMap

__all__ = ["ZammadBinding", "ZammadFieldMap", "title_at_level"]
