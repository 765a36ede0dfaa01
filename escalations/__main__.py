"""``python -m escalations``: the same as the ``escalations`` command (application layer)."""

from __future__ import annotations

import sys

from escalations.app.cli import main

sys.exit(main())
