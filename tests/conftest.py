"""Shared test fixtures. Keep additions small and documented (STYLE.md rule 31)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from escalations.clock import FakeClock
from escalations.mappings import Mappings, load_mappings
from escalations.settings import shipped_mappings_dir
from tests.pg import pg_database, pg_server  # noqa: F401 - the PostgreSQL fixtures (tests/pg.py)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_fixture(name: str) -> Any:
    """A recorded payload under ``tests/fixtures/`` (``load_fixture("zammad/ticket_3.json")``),
    parsed fresh on every call so a test may modify its copy."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture
def clock() -> FakeClock:
    """A ``FakeClock`` at its default start; ``clock.sleeps`` records every sleep."""
    return FakeClock()


def edited_mappings(tmp_path: Path, file: str, old: str, new: str) -> Mappings:
    """The shipped mappings copied to ``tmp_path/mappings`` with ``old`` (which must occur
    in ``file``) replaced by ``new``, loaded and validated."""
    directory = tmp_path / "mappings"
    shutil.copytree(shipped_mappings_dir(), directory)
    path = directory / file
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {file}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return load_mappings(directory)
