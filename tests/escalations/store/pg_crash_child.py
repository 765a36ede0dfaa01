"""A worker-like child for the SIGKILL tests on PostgreSQL: request one "create" intent and
run the executor, with a 2-second claim lease, until nothing is left to do (at most 20 s):
a survivor waits out a dead worker's lease, then finishes its effect. Exit 0.
``ESCALATIONS_TEST_CRASH_AT`` may kill it at a named point first.

    python -m tests.escalations.store.pg_crash_child DATABASE_URL REMOTE_PATH
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

from escalations.clock import SystemClock
from escalations.faults import faults_from_env
from escalations.models import EffectState
from escalations.store.postgres import PostgresStore
from tests.escalations.effects.fakes import CreateHandler, Effects, FileRemote, fake_intent

LEASE = timedelta(seconds=2)


def main(url: str, remote_path: str) -> int:
    store = PostgresStore(url, SystemClock())
    remote = FileRemote(Path(remote_path))
    effects = Effects(
        store,  # type: ignore[arg-type]
        [CreateHandler(remote)],
        SystemClock(),  # type: ignore[arg-type]
        faults_from_env(os.environ),
        lease=LEASE,
    )
    with effects.transaction() as tx:
        effects.request(tx, fake_intent("create:esc:1", "escalation 1"))
    done = 0
    deadline = time.monotonic() + 20
    while store.effects(EffectState.PENDING, EffectState.IN_FLIGHT) and time.monotonic() < deadline:
        done += effects.run_pending().done
        time.sleep(0.1)
    store.close()
    print(f"done={done}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
