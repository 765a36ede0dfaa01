from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from escalations.clock import FakeClock
from escalations.store import SqliteStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the store's file goes; the directory does not exist yet."""
    return tmp_path / "state" / "escalations.sqlite3"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[SqliteStore]:
    """A migrated ``SqliteStore`` on ``db_path``, using the ``clock`` fixture."""
    s = SqliteStore(db_path, clock)
    yield s
    s.close()
