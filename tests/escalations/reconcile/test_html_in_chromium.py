"""``report.html`` in a real headless Chromium (issue 16, done-when): opened from a loopback
server that records every request, the report asks for nothing but itself and the console
stays silent (no CSP refusal, no failed load); a control page proves both checks fail when
they should. The report is one the job made from a sandbox with drift in it, and a worker
killed and restarted."""

from __future__ import annotations

from pathlib import Path

from escalations.reconcile import outputs
from jobs import reconcile
from tests.escalations.reconcile.chromium import visit
from tests.jobs.conftest import BOB, World
from tests.jobs.conftest import world as world  # the fixture, shared with tests/jobs
from tests.jobs.test_reconcile import SETTLE, _beat, _escalated, _take

CONTROL = """<!DOCTYPE html><html><head><title>control</title></head><body>
<img src="pixel.png"><script>console.error("seen by the test")</script></body></html>"""


def test_the_checks_see_a_fetch_and_a_console_message(tmp_path: Path) -> None:
    (tmp_path / "control.html").write_text(CONTROL)
    seen = visit(tmp_path, "control.html", tmp_path / "profile")
    assert seen.requests == ("/control.html", "/pixel.png")
    assert any("seen by the test" in line for line in seen.console)


def test_the_report_fetches_nothing_and_the_console_stays_silent(
    world: World, tmp_path: Path
) -> None:
    _original, esc = _escalated(world, emails=2)
    first = world.copies_in(esc["id"])[-1]
    with world.sandbox.lock:
        del world.sandbox.state.db.articles[first["id"]]
        world.sandbox.state.touch_id(esc["id"])
    world.sandbox.agent_update(
        esc["id"], "alice.agent@fused.example", owner_id=world.sandbox.user_id(BOB)
    )
    _beat(world, "w-killed", 101, world.clock.now())  # a worker killed: never heard again
    _take(world, "w-killed")
    world.sync()
    world.clock.advance(SETTLE)
    _beat(world, "w-new", 102, world.clock.now())  # its restart, which takes the lead
    _take(world, "w-new")
    world.sync()
    report = reconcile.build_report(world.ctx, world.clock.now())
    assert report.drift == 3
    directory = outputs.write(report, tmp_path / "reports")
    seen = visit(directory, "report.html", tmp_path / "profile")
    assert seen.console == ()
    assert seen.requests == ("/report.html",)
    assert "Customer emails not copied (1)" in seen.dom
    assert "Owner differs from the owner the level requires (1)" in seen.dom
    assert "Workers that went silent (1)" in seen.dom
    assert "Worker restarts (1)" in seen.dom
    assert "Leader changes (1)" in seen.dom
    assert "Workers (3)" in seen.dom  # the world's own, the killed one and its restart
    assert seen.dom.count("<svg") == 2
    shot = tmp_path / "report.png"
    visit(directory, "report.html", tmp_path / "profile-2", screenshot=shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
