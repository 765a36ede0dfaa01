"""Redaction at the edge (part of the kernel every layer may use): the process-wide registry of
secrets and a logging filter that masks them wherever they would appear."""

from __future__ import annotations

import logging
import re
import threading

MASK = "**********"
_HEADER_RE = re.compile(r"(?i)(authorization|x-api-key)(['\"]?\s*[:=]\s*['\"]?)([^'\",}\n]+)")


class SecretRegistry:
    """Process-wide set of secret strings that must never be written anywhere."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            with self._lock:
                self._secrets.add(secret)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, MASK)
        return _HEADER_RE.sub(lambda m: m.group(1) + m.group(2) + MASK, text)


SECRETS = SecretRegistry()


class RedactingFilter(logging.Filter):
    """Masks registered secrets and Authorization/X-API-Key values in every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = SECRETS.redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True
