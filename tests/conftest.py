"""Shared test fixtures. Keep additions small and documented (STYLE.md rule 31)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from escalations.clock import FakeClock

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_fixture(name: str) -> Any:
    """A recorded payload under ``tests/fixtures/`` (``load_fixture("zammad/ticket_3.json")``),
    parsed fresh on every call so a test may modify its copy."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture
def clock() -> FakeClock:
    """A ``FakeClock`` at its default start; ``clock.sleeps`` records every sleep."""
    return FakeClock()
