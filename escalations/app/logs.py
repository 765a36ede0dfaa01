"""Logging setup for the entry points: stderr, no timestamps (journald adds them), secrets
masked by the redaction filter. Library modules only ever call ``logging.getLogger``.

Under systemd, stderr is a stream to the journal (``$JOURNAL_STREAM`` names its device and
inode): each line then starts with its syslog priority, ``<3>`` … ``<7>`` (sd-daemon(3)), so
``journalctl -p warning`` shows the warnings and errors and nothing else. Elsewhere the lines
are plain. ``ESCALATIONS_LOG_FORMAT=json`` writes one JSON object per line instead (``time``,
``level``, ``logger``, ``event`` — the first word of the message —, ``message``), for a log
shipper; the priority prefix is added to those too when the journal reads them.

The CLI's own one-line errors (``escalations: …``) go through ``error_line`` so they carry the
error priority as well, and an unexpected exception that reaches the CLI is logged by
``log_crash`` at CRITICAL through the same handler: every line of its traceback starts with
``<2>`` under the journal (``journalctl -p err`` shows it whole), and the secrets in it are
masked.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

from connector.redaction import SECRETS, RedactingFilter

FORMAT = "%(levelname)s %(name)s %(message)s"
PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
"""syslog priorities (RFC 5424 severities) of the logging levels."""
ERROR_PRIORITY = 3


def priority(levelno: int) -> int:
    for level in sorted(PRIORITY, reverse=True):
        if levelno >= level:
            return PRIORITY[level]
    return PRIORITY[logging.DEBUG]


def writes_to_journal(stream: TextIO | None = None, environ: dict[str, str] | None = None) -> bool:
    """Whether ``stream`` (stderr) is the journal stream systemd connected: ``$JOURNAL_STREAM``
    is ``device:inode`` of it. A child whose stderr was redirected keeps the variable but not
    the stream, so the two are compared, as sd_journal_stream_fd(3) advises."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    stream = sys.stderr if stream is None else stream
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


class RedactingFormatter(logging.Formatter):
    """Masks secrets in the whole formatted record, tracebacks included: an exception's
    text can carry what the message filter never sees. With ``journal``, every line of the
    record (a traceback's too) starts with the record's syslog priority."""

    def __init__(self, fmt: str = FORMAT, *, journal: bool = False) -> None:
        super().__init__(fmt)
        self.journal = journal

    def render(self, record: logging.LogRecord) -> str:
        return super().format(record)

    def format(self, record: logging.LogRecord) -> str:
        text = SECRETS.redact(self.render(record))
        if not self.journal:
            return text
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.split("\n"))


class JsonFormatter(RedactingFormatter):
    """One JSON object per record (secrets masked in every field)."""

    def render(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": message.split(" ", 1)[0],
            "message": message,
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_escalations", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    journal = writes_to_journal()
    formatter = JsonFormatter if log_format == "json" else RedactingFormatter
    handler.setFormatter(formatter(FORMAT, journal=journal))
    handler.addFilter(RedactingFilter())
    handler._escalations = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs full URLs at DEBUG; keep it quiet unless asked.
    logging.getLogger("urllib3").setLevel(max(logging.getLevelName(level), logging.INFO))


def error_line(text: str) -> str:
    """The CLI's ``escalations: …`` line for stderr: with the error priority when stderr is
    the journal, secrets masked."""
    line = SECRETS.redact(f"escalations: {text}")
    return f"<{ERROR_PRIORITY}>{line}" if writes_to_journal() else line


def _configured() -> bool:
    return any(getattr(h, "_escalations", False) for h in logging.getLogger().handlers)


def log_crash(command: str | None) -> None:
    """Log the exception being handled, with its traceback, at CRITICAL (the CLI's last
    resort: a bug, not a user error). Sets up logging first when the crash came before the
    command had done so, so the traceback never reaches stderr without its priority."""
    if not _configured():
        configure_logging()
    logging.getLogger("escalations.app.cli").critical(
        "escalations.crashed command=%s: an unexpected error (a bug: please report it with "
        "`escalations diagnostics`)",
        command or "-",
        exc_info=sys.exc_info(),
    )
