"""An agent changes a new escalation ticket while its create is unfinished (found by the
two-worker PostgreSQL harness, seed 1593820155): the worker was killed after the ticket's POST
and before its commit, and an agent set the ticket's level meanwhile. The poll holds such a
ticket back until the create is finished, and the effects step that follows the poll is what
finishes it; the level must then be applied in that same pass, not one pass later (the harness
checks the levels after one clean pass, and the pass after that must write nothing). On SQLite
(the restart finishes the create at once) and on PostgreSQL (a standby, once the dead worker's
claim has expired)."""

from __future__ import annotations

import pytest

from tests.escalations.store.test_postgres_crash_points import (
    PgInstallation,
    pg_install,  # noqa: F401 - the PostgreSQL installation fixture
)
from tests.reliability.test_crash_points import (
    ALICE,
    Installation,
    install,  # noqa: F401 - the SQLite installation fixture
)

pytestmark = pytest.mark.crash


def _level_set_while_the_create_is_unfinished(inst: Installation) -> None:
    sandbox = inst.sandbox
    inst.flag()
    inst.run("effect.sent:create_escalation:1")  # the ticket is there, its commit is not
    (esc,) = inst.escalation_tickets()
    sandbox.agent_update(esc["id"], ALICE, escalation_level="2")
    inst.recover()  # one clean pass, the invariants, a second pass that writes nothing
    levels = sorted(t for t in sandbox.tags_of(esc["id"]) if t.startswith("escalation-l"))
    assert levels == ["escalation-l2"]
    assert [a for a in sandbox.articles_of(esc["id"]) if a["subject"] == "Level 2"]


def test_a_level_set_while_the_create_is_unfinished_is_applied_in_the_pass_that_finishes_it(
    install: Installation,  # noqa: F811 - the fixture imported above
) -> None:
    _level_set_while_the_create_is_unfinished(install)


def test_the_same_on_postgresql(pg_install: PgInstallation) -> None:  # noqa: F811
    _level_set_while_the_create_is_unfinished(pg_install)
