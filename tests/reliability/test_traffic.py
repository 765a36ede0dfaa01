"""The soaks' traffic generator (``test_kill_soak.Traffic``) on a helpdesk that changes under
it: the worker creates escalation tickets while the generator picks one (found by the
two-worker PostgreSQL harness, seed 88029808: ``outcome: KeyError: 114``)."""

from __future__ import annotations

import random
from typing import Any

from tests.reliability.test_kill_soak import Traffic


class Growing:
    """A sandbox whose ticket list gains an escalation ticket at each read, as when the
    worker's create lands between two reads of the generator."""

    def __init__(self) -> None:
        self.reads = 0

    @property
    def tickets(self) -> dict[int, dict[str, Any]]:
        self.reads += 1
        return {
            n: {"escalation_key": f"zammad:ticket:{n}:1", "state": "parked"}
            for n in range(1, self.reads + 1)
        }


def test_the_escalations_in_a_state_come_from_one_reading_of_the_tickets() -> None:
    traffic = Traffic(Growing(), random.Random(1))  # type: ignore[arg-type]
    assert traffic._escalations_in("parked") == [1]
    assert traffic._escalations_in("closed") == []
