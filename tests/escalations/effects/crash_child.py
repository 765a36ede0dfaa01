"""A worker-like child for the SIGKILL tests: request one "create" intent, run the executor,
exit 0. ``ESCALATIONS_TEST_CRASH_AT`` may kill it at a named point first.

    python -m tests.escalations.effects.crash_child DB_PATH REMOTE_PATH
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from escalations.clock import SystemClock
from escalations.faults import faults_from_env
from escalations.store import SqliteStore
from tests.escalations.effects.fakes import CreateHandler, Effects, FileRemote, fake_intent


def main(db_path: str, remote_path: str) -> int:
    store = SqliteStore(db_path, SystemClock())
    store.acquire_lock()
    remote = FileRemote(Path(remote_path))
    effects = Effects(store, [CreateHandler(remote)], SystemClock(), faults_from_env(os.environ))  # type: ignore[arg-type]
    with effects.transaction() as tx:
        effects.request(tx, fake_intent("create:esc:1", "escalation 1"))
    result = effects.run_pending()
    store.close()
    print(f"done={result.done}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
