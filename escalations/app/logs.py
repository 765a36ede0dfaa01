"""Logging setup for the entry points: stderr, no timestamps (journald adds them), secrets
masked by the redaction filter. Library modules only ever call ``logging.getLogger``."""

from __future__ import annotations

import logging
import sys

from connector.redaction import SECRETS, RedactingFilter

FORMAT = "%(levelname)s %(name)s %(message)s"


class RedactingFormatter(logging.Formatter):
    """Masks secrets in the whole formatted record, tracebacks included: an exception's
    text can carry what the message filter never sees."""

    def format(self, record: logging.LogRecord) -> str:
        return SECRETS.redact(super().format(record))


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_escalations", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(FORMAT))
    handler.addFilter(RedactingFilter())
    handler._escalations = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs full URLs at DEBUG; keep it quiet unless asked.
    logging.getLogger("urllib3").setLevel(max(logging.getLevelName(level), logging.INFO))
