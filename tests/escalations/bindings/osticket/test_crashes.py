"""SIGKILL at every named fault point of raising the escalation ticket and of copying a
customer email, on the real osTicket: the worker (``escalations run --once``) dies there, a
restart without faults leaves exactly one escalation ticket and exactly one copy of every
customer email (``RELIABILITY.md`` §B8)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.clock import SystemClock
from escalations.effects.helpdesk import COPY_ARTICLE, CREATE_ESCALATION
from escalations.faults import POINTS
from escalations.models import EffectState
from escalations.store.sqlite import SqliteStore
from tests.connector.osticket.real import FLAG_STATUS, RealOsTicket, unique_customer

pytestmark = [pytest.mark.crash, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[4]


def _run(osticket: RealOsTicket, state: Path, crash_at: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATIONS_")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    e = osticket.env
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        ESCALATIONS_HELPDESK="osticket",
        ESCALATIONS_HELPDESK_URL=osticket.url,
        ESCALATIONS_HELPDESK_TOKEN=osticket.api_key,
        ESCALATIONS_HELPDESK_DB_HOST=e["OSTICKET_DB_HOST"],
        ESCALATIONS_HELPDESK_DB_PORT=e["OSTICKET_DB_PORT"],
        ESCALATIONS_HELPDESK_DB_NAME=e["OSTICKET_DB_NAME"],
        ESCALATIONS_HELPDESK_DB_USER=e["OSTICKET_DB_USER"],
        ESCALATIONS_HELPDESK_DB_PASSWORD=e["OSTICKET_DB_PASSWORD"],
        ESCALATIONS_STATE_DIR=str(state),
        ESCALATIONS_HTTP_REQUESTS_PER_MINUTE="6000",
        ESCALATIONS_WRITE_SETTLE_SECONDS="0",  # the killed worker's request is not running
    )
    if crash_at is not None:
        env["ESCALATIONS_TEST_CRASH_AT"] = crash_at
    proc = subprocess.run(
        [sys.executable, "-m", "escalations", "run", "--once"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    expected = -signal.SIGKILL if crash_at is not None else 0
    assert proc.returncode == expected, f"crash_at={crash_at}: {proc.returncode}\n{proc.stderr}"


@pytest.mark.parametrize("kind", [CREATE_ESCALATION, COPY_ARTICLE])
@pytest.mark.parametrize("point", POINTS)
def test_sigkill_while_escalating_or_copying(
    osticket: RealOsTicket, tmp_path: Path, point: str, kind: str
) -> None:
    osticket.admin_sql(  # an admin step: flags left by other tests are cleared
        "UPDATE ost_ticket t JOIN ost_ticket_status s ON s.id = t.status_id "
        "SET t.status_id = 1 WHERE s.name = %s",
        (FLAG_STATUS,),
    )
    adapter = osticket.adapter()
    start = datetime.now(UTC) - timedelta(seconds=5)
    customer = unique_customer()
    mail = osticket.mail_files()
    number = osticket.customer_mail(customer, "Depot offline", "Offline since 8.")
    original = adapter.ticket_by_number(number)
    assert original is not None
    osticket.agent_set_status(original.id, FLAG_STATUS)
    # a pass reads changes stamped up to 2 s before the helpdesk's now (jobs/sync/poll.py
    # SIGNPOST_SKEW): the crashing pass must be one that sees the flag
    time.sleep(2.2)

    _run(osticket, tmp_path, f"{point}:{kind}:1")
    _run(osticket, tmp_path, None)
    _run(osticket, tmp_path, None)

    tickets = [t for t in adapter.changed_tickets(start) if t.fields.get("origin_ticket") == number]
    assert len(tickets) == 1, f"{len(tickets)} escalation tickets"
    copies = [a for a in adapter.list_articles(tickets[0].id) if "Offline since 8." in a.body]
    assert len(copies) == 1, f"the history email copied {len(copies)} times"
    assert customer not in osticket.recipients_since(mail)
    store = SqliteStore(tmp_path / "escalations.sqlite3", SystemClock())
    try:
        assert store.effects(EffectState.PENDING, EffectState.IN_FLIGHT) == []
    finally:
        store.close()
