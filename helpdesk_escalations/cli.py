"""The ``escalations`` console script: the bundled packages made importable, then the CLI."""

from __future__ import annotations

import helpdesk_escalations  # noqa: F401 - puts the bundled packages on sys.path


def main() -> int:
    from escalations.app.cli import main as cli_main

    return cli_main()
