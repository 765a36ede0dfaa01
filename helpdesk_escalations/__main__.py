"""``python -m helpdesk_escalations``: the ``escalations`` command."""

from helpdesk_escalations.cli import main

raise SystemExit(main())
