"""Logs an on-call admin can read in the journal (issue 14 #5): a syslog priority on every
line when stderr is the journal stream (``journalctl -p warning`` used to show nothing, or
everything), plain lines elsewhere, JSON lines on request; an idle pass is silent at INFO;
a refused token is said once (it used to be three lines)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from escalations.app.logs import FORMAT, JsonFormatter, RedactingFormatter, writes_to_journal
from escalations.clock import FakeClock
from sandbox import ZammadSandbox, serve
from tests.reliability.test_crash_points import ROOT, Installation


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("jobs.worker", level, __file__, 1, message, None, None)


def test_journal_lines_carry_their_priority() -> None:
    formatter = RedactingFormatter(FORMAT, journal=True)
    assert formatter.format(record(logging.WARNING, "helpdesk.unreachable")).startswith("<4>")
    assert formatter.format(record(logging.ERROR, "job.failed")).startswith("<3>")
    assert formatter.format(record(logging.INFO, "job.done")).startswith("<6>")
    assert formatter.format(record(logging.DEBUG, "job.done")).startswith("<7>")
    assert RedactingFormatter(FORMAT).format(record(logging.ERROR, "x")) == "ERROR jobs.worker x"


def test_every_line_of_a_traceback_carries_the_priority() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record(logging.ERROR, "job.failed job=sync")
        rec.exc_info = sys.exc_info()
    lines = RedactingFormatter(FORMAT, journal=True).format(rec).split("\n")
    assert len(lines) > 3
    assert all(line.startswith("<3>") for line in lines)


def test_json_lines() -> None:
    text = JsonFormatter(FORMAT).format(record(logging.WARNING, "helpdesk.unreachable since=x"))
    entry = json.loads(text)
    assert entry["level"] == "WARNING"
    assert entry["event"] == "helpdesk.unreachable"
    assert entry["logger"] == "jobs.worker"
    assert entry["time"].endswith("+00:00")


def test_the_journal_is_recognised_by_device_and_inode(tmp_path: Path) -> None:
    with (tmp_path / "stderr").open("w") as stream, (tmp_path / "other").open("w") as other:
        info = os.fstat(stream.fileno())
        env = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        assert writes_to_journal(stream, env)
        assert not writes_to_journal(other, env)  # inherited variable, redirected stderr
        assert not writes_to_journal(stream, {})
        assert not writes_to_journal(io.StringIO(), env)


QUIET = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
"""A Sunday night: no duty of the communication plan comes due (a pass on the real clock
inside a call window's reminder lead writes a reminder, and is not idle)."""


@pytest.fixture
def install(tmp_path: Path) -> Iterator[Installation]:
    sandbox = ZammadSandbox.demo(clock=FakeClock(QUIET))
    with serve(sandbox) as server:
        yield Installation(sandbox, server, tmp_path / "state")


def run_to_file(install: Installation, tmp_path: Path, *, journal: bool, **env: str) -> str:
    """``escalations run --once`` with stderr to a file that is, or is not, the journal."""
    path = tmp_path / "journal.txt"
    with path.open("w") as stderr:
        if journal:
            info = os.fstat(stderr.fileno())
            env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
        subprocess.run(
            [sys.executable, "-m", "escalations", "run", "--once", "--at", QUIET.isoformat()],
            env=install.env(**env),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            timeout=60,
            check=False,
        )
    return path.read_text()


def test_worker_lines_in_the_journal_start_with_a_priority(
    install: Installation, tmp_path: Path
) -> None:
    install.flag()
    text = run_to_file(install, tmp_path, journal=True)
    lines = text.splitlines()
    assert lines, "the pass logged nothing"
    assert all(line[:3] in {"<3>", "<4>", "<6>", "<7>"} for line in lines), text
    assert any(line.startswith("<6>INFO jobs.worker job.done job=sync") for line in lines)

    plain = run_to_file(install, tmp_path, journal=False, ESCALATIONS_LOG_LEVEL="DEBUG")
    assert plain
    assert not any(line.startswith("<") for line in plain.splitlines())


def test_a_configuration_error_line_carries_the_error_priority(
    install: Installation, tmp_path: Path
) -> None:
    text = run_to_file(install, tmp_path, journal=True, ESCALATIONS_HTTP_MAX_ATTEMPTS="0")
    assert text.startswith("<3>escalations: ESCALATIONS_HTTP_MAX_ATTEMPTS: ")


def test_an_idle_pass_is_silent_at_info(install: Installation, tmp_path: Path) -> None:
    install.flag()
    busy = run_to_file(install, tmp_path, journal=False)
    assert "job.done job=sync" in busy
    run_to_file(install, tmp_path, journal=False)  # reads back the worker's own writes
    idle = run_to_file(install, tmp_path, journal=False)
    assert idle == "", idle  # 2 880 lines a day at a 30-second interval, before


def test_a_refused_token_is_said_once(install: Installation, tmp_path: Path) -> None:
    text = run_to_file(
        install, tmp_path, journal=False, ESCALATIONS_HELPDESK_TOKEN="not-the-bot-token"
    )
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("escalations: the helpdesk refused the token (HTTP 401 ")
    assert lines[0].endswith("check ESCALATIONS_HELPDESK_TOKEN or the helpdesk-token credential")


CRASH = """
import sys
import escalations.app.commands as commands
from escalations.app.cli import main

def broken(args):
    raise RuntimeError("an unexpected fault")

commands.status = broken
sys.exit(main(["status"]))
"""


def test_an_unexpected_traceback_carries_its_priority_on_every_line(tmp_path: Path) -> None:
    """A bug reaching the CLI used to print Python's own traceback: lines without a priority,
    which ``journalctl -p err`` never shows. Now it is logged at CRITICAL (``<2>``), every
    line of it, and the exit code is the documented 1."""
    path = tmp_path / "journal.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATIONS_")}
    env.update(
        PYTHONPATH=str(ROOT),
        ESCALATIONS_STATE_DIR=str(tmp_path / "state"),
    )
    with path.open("w") as stderr:
        info = os.fstat(stderr.fileno())
        env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
        proc = subprocess.run(
            [sys.executable, "-c", CRASH],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            timeout=60,
            check=False,
        )
    text = path.read_text()
    lines = text.splitlines()
    assert proc.returncode == 1, text
    assert any("Traceback" in line for line in lines), text
    assert any("RuntimeError: an unexpected fault" in line for line in lines), text
    assert all(line.startswith("<2>") for line in lines), text
    assert lines[0].startswith("<2>CRITICAL escalations.app.cli escalations.crashed command=status")
