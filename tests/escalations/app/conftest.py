"""Fixtures shared by the CLI tests."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from escalations.settings import ENV_PREFIX


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No ``ESCALATIONS_*`` from the caller; state in ``tmp_path/state``. Afterwards the
    logging handlers and signal handlers that ``main`` installs are put back."""
    for key in list(os.environ):
        if key.upper().startswith(ENV_PREFIX) or key in ("CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET"):
            monkeypatch.delenv(key)
    state = tmp_path / "state"
    monkeypatch.setenv("STATE_DIRECTORY", str(state))
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(state))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    signals = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield state
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for signum, handler in signals.items():
        signal.signal(signum, handler)
