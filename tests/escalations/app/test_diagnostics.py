"""``escalations diagnostics`` (issue 14 #4): one bundle for a bug report — versions, settings,
mapping checksums, store statistics, last errors — with no secret in it, text or JSON, and
still written when a setting is broken or the store does not exist."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from escalations.settings import shipped_mappings_dir
from sandbox import ServerError, ZammadSandbox, serve
from tests.reliability.test_crash_points import ROOT, Installation


@pytest.fixture
def install(tmp_path: Path) -> Iterator[Installation]:
    sandbox = ZammadSandbox.demo()
    with serve(sandbox) as server:
        yield Installation(sandbox, server, tmp_path / "state")


def diagnostics(install: Installation, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "escalations", "diagnostics", *argv],
        env=install.env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bundle_of_a_working_installation_holds_no_secret(install: Installation) -> None:
    install.flag()
    install.sandbox.faults.add(ServerError(method="POST", path=r"/tags/add", status=500, times=99))
    install.run(ESCALATIONS_HTTP_MAX_ATTEMPTS="1")
    token = install.sandbox.token_of("escalation-bot")

    text = diagnostics(install)
    assert text.returncode == 0, text.stderr
    assert token not in text.stdout + text.stderr
    assert "## versions" in text.stdout
    assert "helpdesk_token: **********" in text.stdout

    done = diagnostics(install, "--json")
    assert done.returncode == 0, done.stderr
    assert token not in done.stdout
    data = json.loads(done.stdout)
    assert (data["schema"], data["version"]) == ("helpdesk-escalations/diagnostics", 1)
    assert data["settings"]["helpdesk_url"] == install.server.url
    assert data["settings"]["helpdesk_token"] == "**********"
    shipped = shipped_mappings_dir() / "process.toml"
    assert data["mappings"]["files"]["process.toml"]["sha256"] == (
        hashlib.sha256(shipped.read_bytes()).hexdigest()
    )
    assert data["mappings"]["check"] == "ok"
    store = data["store"]
    assert store["exists"] is True
    assert store["lock"] == "free"
    assert store["integrity"] == ["ok"]
    assert store["schema"] >= 8
    assert sum(store["effects"].values()) > 0
    assert store["open_escalations"] == {"level 1 open": 1}
    assert store["last_successful_poll"] is not None
    assert data["versions"]["libraries"]["requests"] != "not installed"
    for driver in ("psycopg", "PyMySQL"):  # the PostgreSQL and osTicket drivers too
        assert data["versions"]["libraries"][driver] != "not installed", driver


def test_a_password_in_the_url_is_masked(install: Installation) -> None:
    url = install.server.url.replace("http://", "http://admin:hunter2secret@")
    done = diagnostics(install, "--json", ESCALATIONS_HELPDESK_URL=url)
    assert done.returncode == 0, done.stderr
    assert "hunter2secret" not in done.stdout + done.stderr


def test_broken_settings_are_reported_in_the_bundle(install: Installation) -> None:
    done = diagnostics(install, "--json", ESCALATIONS_POLL_INTERVAL_SECONDS="0")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert "ESCALATIONS_POLL_INTERVAL_SECONDS" in data["settings"]["error"]
    assert "store" not in data
    assert data["versions"]["python"] == sys.version.split()[0]


def test_no_store_yet(install: Installation) -> None:
    done = diagnostics(install, "--json")
    assert json.loads(done.stdout)["store"] == {
        "path": str(install.store_path),
        "exists": False,
    }


def test_version_option_as_well_as_the_command(install: Installation) -> None:
    """``escalations --version`` used to be exit 2 (only ``escalations version`` existed)."""
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for argv in (["--version"], ["version"]):
        done = subprocess.run(
            [sys.executable, "-m", "escalations", *argv],
            env=install.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (done.returncode, done.stdout) == (0, f"helpdesk-escalations {version}\n"), argv
