"""The demo and the sandbox command, as a newcomer runs them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from escalations.app.cli import main


def test_demo_tells_the_day_and_leaves_a_store_to_inspect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "demo"
    assert main(["demo", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    for line in (
        r"raised escalation ticket #\d+ \"\[ESC L1\] Broadband down since Monday\"",
        r"internal note: Customer email: Re: broadband down - photo with router\.jpg",
        r"owner now: duty\.manager@fused\.example",
        r"internal note: Level 3",
        r"internal note: Carrier contact incomplete",
        r"internal note: Carrier route failed",
        r"owner now: cs\.supervisor@fused\.example",
        r"3 customer emails copied",
        r"Mail Zammad sent because of the worker: 0\.",
        # Escalate, level 2, level 3, carrier route failed, resolved, customer confirmed
        r"Macros the agents ran \(provisioned by escalations provision\): 6 applied\.",
        r"escalations status",
    ):
        assert re.search(line, out), f"missing from the story: {line}"
    dump = json.loads((state / "sandbox-state.json").read_text())
    escalation = [t for t in dump["tickets"].values() if t.get("escalation_key")]
    assert len(escalation) == 1
    assert (state / "escalations.sqlite3").exists()


def test_demo_refuses_a_directory_with_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "escalations.sqlite3").write_bytes(b"")
    assert main(["demo", "--state-dir", str(tmp_path)]) == 78
    assert "already holds a store" in capsys.readouterr().err


def test_the_printed_commands_raise_an_escalation_on_the_sandbox(tmp_path: Path) -> None:
    """A new user's first hour: ``escalations sandbox`` prints the exports and three
    commands; run as printed (the state directory aside), they give a provisioned helpdesk
    that passes ``check --live``, an escalation raised through the Escalate macro, the
    customer's new message copied into it — and SIGTERM stops the sandbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATIONS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "escalations", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        printed: list[str] = []
        while not (printed and printed[-1].startswith("Ctrl-C")):
            line = proc.stdout.readline()
            assert line, f"the sandbox ended early: {proc.stderr.read() if proc.stderr else ''}"
            printed.append(line.rstrip("\n"))
        url = re.search(r"API at (http://127\.0\.0\.1:\d+)", printed[0])
        assert url, printed[0]
        exports = [x.strip() for x in printed if x.strip().startswith("export ")]
        commands = [
            x.strip()
            for x in printed
            if x.strip().startswith(("curl ", "escalations ")) and x.startswith("  ")
        ]
        assert [c.split()[0:2] for c in commands] == [
            ["escalations", "check"],
            ["curl", "-fsS"],
            ["curl", "-fsS"],
            ["escalations", "run"],
        ]
        # each session prints a new, empty store directory (a store of an earlier session
        # would remember tickets this sandbox never had)
        (printed_state,) = [x.split("=", 1)[1] for x in exports if "STATE_DIR=" in x]
        assert Path(printed_state).is_dir()
        assert list(Path(printed_state).iterdir()) == []
        Path(printed_state).rmdir()
        state = tmp_path / "state"
        script = "\n".join(
            [
                "set -e",
                *[
                    f"export ESCALATIONS_STATE_DIR={state}" if "STATE_DIR=" in x else x
                    for x in exports
                ],
                *commands,
            ]
        )
        # a shell with mappings of its own: the exports name the ones provisioned from
        own = {**env, "ESCALATIONS_MAPPINGS_DIR": str(tmp_path / "an-admins-own-mappings")}
        done = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, env=own, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "helpdesk: ok (" in done.stdout
        assert "level 1  open       1" in done.stdout

        admin = {"Authorization": "Token token=sandbox-admin-token"}
        tickets = requests.get(
            f"{url.group(1)}/api/v1/tickets",
            params={"expand": "true", "per_page": 100},
            headers=admin,
            timeout=(2, 5),
        ).json()
        (escalation_id,) = [t["id"] for t in tickets if t["title"].startswith("[ESC L1] ")]
        articles = requests.get(
            f"{url.group(1)}/api/v1/ticket_articles/by_ticket/{escalation_id}",
            headers=admin,
            timeout=(2, 5),
        ).json()
        assert any("Still no broadband." in a["body"] for a in articles)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)


def test_sandbox_command_with_a_missing_seed_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sandbox", "--seed", str(tmp_path / "nope.json")]) == 78
    err = capsys.readouterr().err
    assert err.strip() == f"escalations: {tmp_path / 'nope.json'}: seed file not found"


def test_demo_and_sandbox_need_no_test_dependency(tmp_path: Path) -> None:
    """The README's first command installs without the test extras: the demo must not
    import responses, pytest or hypothesis (a fresh-clone run once failed on this)."""
    code = (
        "import sys\n"
        "for name in ('responses', 'pytest', 'hypothesis', 'time_machine'):\n"
        "    sys.modules[name] = None  # any import of them now fails\n"
        "from escalations.app.cli import main\n"
        f"sys.exit(main(['demo', '--state-dir', {str(tmp_path / 'demo')!r}]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATIONS_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Mail Zammad sent because of the worker: 0." in done.stdout
