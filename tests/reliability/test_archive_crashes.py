"""SIGKILL at each step of filing a hard copy and of purging one (issue 12): the real worker,
``escalations run --once``, in a subprocess against a loopback sandbox server, killed at
``archive.*`` and ``purge.*``; a restart must leave exactly one complete archive (no half one
counted as done), and each purge recorded exactly once. Killed while filing and the
escalation reopened by an agent before the next pass (issue 19, found by the two-worker
harness): what the killed run left is recorded or removed, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.clock import SystemClock
from escalations.archive import directory
from escalations.clock import SystemClock as StoreClock
from escalations.faults import ARCHIVE_POINTS
from escalations.models import ArchiveCopy, State
from escalations.store.postgres import PostgresStore
from escalations.store.sqlite import SqliteStore
from sandbox import ZammadSandbox, serve
from tests.escalations.store.test_postgres_crash_points import (
    RECOVER_AFTER,
    PgInstallation,
    pg_install,  # noqa: F401 - the PostgreSQL installation fixture
)
from tests.reliability.test_crash_points import ALICE, Installation

pytestmark = pytest.mark.crash

LATER = timedelta(days=400)
"""Past the 12 months of retention."""


class Ahead(SystemClock):
    """The helpdesk's clock, ``offset`` ahead of real time (time has passed for it too)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return super().now() + self.offset


@pytest.fixture
def install(tmp_path: Path) -> Iterator[Installation]:
    sandbox = ZammadSandbox.demo()
    with serve(sandbox) as server:
        yield Installation(sandbox, server, tmp_path / "state")


def _confirmed(install: Installation) -> None:
    install.flag()
    install.run()
    (esc,) = install.escalation_tickets()
    install.sandbox.agent_update(esc["id"], ALICE, state="closed")
    install.run()
    install.sandbox.add_tag(esc["id"], "escalation-confirmed", login=ALICE)


def _stored(install: Installation) -> tuple[list[ArchiveCopy], State]:
    copies, state, _ = _stored_intents(install)
    return copies, state


def _stored_intents(install: Installation) -> tuple[list[ArchiveCopy], State, int]:
    store = (
        PostgresStore(install.url, StoreClock())
        if isinstance(install, PgInstallation)
        else SqliteStore(install.store_path, StoreClock())
    )
    try:
        (esc,) = store.escalations_in()
        return store.archives(), esc.state, len(store.archive_intents())
    finally:
        store.close()


def _archive_root(install: Installation) -> Path:
    return install.state_dir / "archive"


@pytest.mark.parametrize("point", [p for p in ARCHIVE_POINTS if p.startswith("archive.")])
def test_a_crash_while_archiving_leaves_one_complete_archive(
    install: Installation, point: str
) -> None:
    _confirmed(install)
    install.run(f"{point}:*:1")
    install.run()
    install.run()
    copies, state = _stored(install)
    assert state is State.ARCHIVED
    (copy,) = copies
    names = [p.name for p in _archive_root(install).iterdir()]
    assert names == [Path(copy.path).name], names  # no half archive, no second one
    assert directory.verify(Path(copy.path)) == []


@pytest.mark.parametrize("point", [p for p in ARCHIVE_POINTS if p.startswith("purge.")])
def test_a_crash_while_purging_records_the_purge_once(install: Installation, point: str) -> None:
    _confirmed(install)
    install.run()
    (copy,), _ = _stored(install)
    later = datetime.now(UTC) + LATER
    install.sandbox.clock = install.sandbox.state.clock = Ahead(LATER)
    install.run(f"{point}:*:1", at=later)
    install.run(at=later + timedelta(minutes=1))
    install.run(at=later + timedelta(minutes=2))
    (purged,), state = _stored(install)
    assert purged.path == copy.path
    assert purged.purged_at is not None
    assert state is State.PURGED
    assert list(_archive_root(install).iterdir()) == []
    records = [line for line in install.log if "archive.purged" in line]
    assert len("\n".join(records).split("archive.purged")) - 1 == 1, records


def _killed_while_filing_then_reopened(install: Installation, point: str) -> None:
    """Killed at ``point`` while filing the confirmed close; an agent reopens the escalation
    before the next pass; then the next passes (past the killed worker's leases, which on
    PostgreSQL the restart waits out), the escalation closed and confirmed once more."""
    _confirmed(install)
    install.run(f"{point}:*:1")
    (esc,) = install.escalation_tickets()
    install.sandbox.agent_update(esc["id"], ALICE, state="open")
    later = datetime.now(UTC) + RECOVER_AFTER if isinstance(install, PgInstallation) else None
    install.run(at=later)
    copies, state, intents = _stored_intents(install)
    assert state is State.OPEN
    placed = point in ("archive.placed", "archive.committed")
    assert len(copies) == (1 if placed else 0), copies
    on_disk = sorted(p.name for p in _archive_root(install).iterdir())
    assert on_disk == [Path(c.path).name for c in copies], on_disk  # nothing unrecorded
    assert intents == 0
    for copy in copies:
        assert directory.verify(Path(copy.path)) == []
    # closed and confirmed again: that close gets its own copy, the first is not rewritten
    install.sandbox.agent_update(esc["id"], ALICE, state="closed")
    install.run(at=later and later + timedelta(minutes=1))
    install.sandbox.add_tag(esc["id"], "escalation-confirmed", login=ALICE)
    install.run(at=later and later + timedelta(minutes=2))
    install.run(at=later and later + timedelta(minutes=3))
    again, state, intents = _stored_intents(install)
    assert state is State.ARCHIVED
    assert again[: len(copies)] == copies
    assert len(again) == len(copies) + 1, again
    on_disk = sorted(p.name for p in _archive_root(install).iterdir())
    assert on_disk == sorted(Path(c.path).name for c in again), on_disk
    assert intents == 0


@pytest.mark.parametrize(
    "point", ["archive.begun", "archive.files_written", "archive.placed", "archive.committed"]
)
def test_killed_while_filing_and_reopened_leaves_nothing_unrecorded(
    install: Installation, point: str
) -> None:
    _killed_while_filing_then_reopened(install, point)


def test_killed_while_filing_and_reopened_leaves_nothing_unrecorded_on_postgresql(
    pg_install: PgInstallation,  # noqa: F811 - the fixture imported above
) -> None:
    _killed_while_filing_then_reopened(pg_install, "archive.placed")
