"""The one import name helpdesk-escalations installs (issue 14: names that cannot collide).

The project's packages keep the repository's top-level folders and their names (``connector``,
``escalations``, ``jobs``, ``sandbox``, ``mappings``: DESIGN.md "Architecture"). Installed, they
live inside this package, in ``_lib/``, so site-packages holds no ``jobs`` or ``connector`` of
ours beside another distribution's: importing this package puts ``_lib`` first on
``sys.path`` for the process that runs the worker (the ``escalations`` command and
``python -m helpdesk_escalations`` do). In a source tree (a checkout, an editable install)
there is no ``_lib``: the packages are the checkout's own folders, next to this one.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
BUNDLE = _HERE / "_lib" if (_HERE / "_lib").is_dir() else _HERE.parent
"""Where ``connector``, ``escalations``, ``jobs``, ``sandbox`` and ``mappings`` are."""

if str(BUNDLE) not in sys.path:
    sys.path.insert(0, str(BUNDLE))
