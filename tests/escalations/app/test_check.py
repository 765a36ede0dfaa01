"""``escalations check`` runs every check ``run`` makes before it starts (issue 14 #3): the
same refusal, the same line, the same exit code from both — and never a secret. Offline
``check`` used to pass what ``run`` refused (``http://`` to a remote host, a missing CA bundle),
printed the password of ``https://user:pw@host``, and a state directory that could not be used
was a traceback or "unable to open database file" with exit 1 (a restart loop)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from escalations.app.cli import main
from escalations.clock import SystemClock
from escalations.errors import EX_CONFIG
from escalations.store.sqlite import SqliteStore, load_migrations

TOKEN = "check-token-0001"


@pytest.fixture(autouse=True)
def configured(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", "https://zammad.example.com")
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", TOKEN)
    return cli_env


def both(capsys: pytest.CaptureFixture[str]) -> dict[str, tuple[int, str]]:
    """``check`` and ``run --once``: exit code and the ``escalations:`` lines of each."""
    seen = {}
    for argv in (["check"], ["run", "--once"]):
        code = main(argv)
        out, err = capsys.readouterr()
        assert TOKEN not in out + err
        lines = [line for line in err.splitlines() if line.startswith("escalations: ")]
        seen[argv[0]] = (code, "\n".join(lines))
    return seen


def test_plain_http_to_a_remote_host(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", "http://zammad.example.com")
    seen = both(capsys)
    assert seen["check"] == seen["run"]
    code, line = seen["check"]
    assert code == EX_CONFIG
    assert line.startswith("escalations: ESCALATIONS_HELPDESK_URL: refusing http:// to ")


def test_missing_ca_bundle(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ESCALATIONS_CA_BUNDLE", str(tmp_path / "no-ca.pem"))
    seen = both(capsys)
    assert seen["check"] == seen["run"]
    assert seen["check"] == (
        EX_CONFIG,
        f"escalations: ESCALATIONS_CA_BUNDLE: CA bundle {tmp_path / 'no-ca.pem'} is not a file",
    )


def test_state_directory_that_cannot_be_created(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", "/sys/helpdesk-escalations-test")  # EPERM, root too
    seen = both(capsys)
    assert seen["check"] == seen["run"]
    code, line = seen["check"]
    assert code == EX_CONFIG
    assert line.startswith(
        "escalations: ESCALATIONS_STATE_DIR: /sys/helpdesk-escalations-test: cannot create the "
        "store directory: "
    )
    assert line.endswith("(set ESCALATIONS_STATE_DIR to a directory this user may write)")


def test_check_creates_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``check`` used to create the state, archive and reports directories: run as root
    before the first start, they belonged to root, and the service's dynamic user could not
    own them. Now it says they would be created, and creates nothing."""
    state = tmp_path / "var" / "lib" / "helpdesk-escalations"
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(state))
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert sorted(tmp_path.iterdir()) == []  # not even the scratch directory it proved with
    assert (
        f"state: ok (store {state}: would be created at first start, archive {state / 'archive'}"
        f": would be created at first start, reports {state / 'reports'}: would be created at "
        "first start)"
    ) in out
    assert f"store: ok ({state / 'escalations.sqlite3'}: none yet; no other worker holds it)" in out


def test_check_of_an_existing_store_writes_no_file(
    capsys: pytest.CaptureFixture[str], configured: Path
) -> None:
    """The store is read with a read-only open: no ``-wal``/``-shm`` file appears (they would
    belong to root), and its schema version is reported."""
    configured.mkdir(parents=True)
    SqliteStore(configured / "escalations.sqlite3", SystemClock()).close()
    before = sorted(p.name for p in configured.rglob("*"))
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in configured.rglob("*")) == before
    schema = len(load_migrations())
    assert f"store: ok ({configured / 'escalations.sqlite3'}: schema {schema}, readable;" in out


def test_a_corrupt_store_is_refused_by_check_as_by_run(
    capsys: pytest.CaptureFixture[str], configured: Path
) -> None:
    """``check`` never opened the store: a corrupt file passed it, and ``run`` then failed
    with exit 1 (a restart loop)."""
    configured.mkdir(parents=True)
    database = configured / "escalations.sqlite3"
    database.write_bytes(b"not a database " * 500)
    assert main(["check"]) == EX_CONFIG
    capsys.readouterr()
    assert sorted(p.name for p in configured.iterdir()) == ["escalations.sqlite3"]  # no -shm
    seen = both(capsys)
    assert seen["check"] == seen["run"]
    code, line = seen["check"]
    assert code == EX_CONFIG
    assert line.startswith(f"escalations: ESCALATIONS_STATE_DIR: {database}: not a usable store (")


def test_a_store_newer_than_the_code_is_refused_by_check_as_by_run(
    capsys: pytest.CaptureFixture[str], configured: Path
) -> None:
    """A downgrade: the store carries a schema this code does not know. ``run`` used to exit
    1 (restarted in a loop) and ``check`` passed; both now exit 78 naming the file."""
    configured.mkdir(parents=True)
    database = configured / "escalations.sqlite3"
    SqliteStore(database, SystemClock()).close()
    conn = sqlite3.connect(database)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    seen = both(capsys)
    assert seen["check"] == seen["run"]
    latest = len(load_migrations())
    assert seen["check"] == (
        EX_CONFIG,
        f"escalations: ESCALATIONS_STATE_DIR: {database}: database schema version 99 is newer "
        f"than this code understands ({latest}); upgrade helpdesk-escalations or restore a "
        "backup",
    )


def test_status_of_a_store_newer_than_the_code_is_down(
    capsys: pytest.CaptureFixture[str], configured: Path
) -> None:
    """The worker refuses such a store (exit 78), so it is down: ``status`` says so with the
    code a monitoring check reads (2), in JSON too; it said "degraded" (1) with no JSON."""
    configured.mkdir(parents=True)
    database = configured / "escalations.sqlite3"
    SqliteStore(database, SystemClock()).close()
    conn = sqlite3.connect(database)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    assert main(["status"]) == 2
    out = capsys.readouterr().out
    assert "health: down: the store is refused (" in out
    assert main(["status", "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["health"]["code"] == 2


def test_state_directory_that_is_not_writable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    state = tmp_path / "read-only"
    state.mkdir(mode=0o500)
    if os.access(state, os.W_OK):  # root writes anywhere, but not into /proc
        state = Path("/proc")
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(state))
    seen = both(capsys)
    assert seen["check"] == seen["run"]
    code, line = seen["check"]
    assert code == EX_CONFIG
    assert line.startswith(
        f"escalations: ESCALATIONS_STATE_DIR: {state}: the store directory is not writable: "
    )


def test_archive_directory_setting_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALATIONS_ARCHIVE_DIR", "/sys/helpdesk-escalations-archive")
    seen = both(capsys)
    assert seen["check"] == seen["run"]
    assert seen["check"][1].startswith(
        "escalations: ESCALATIONS_ARCHIVE_DIR: /sys/helpdesk-escalations-archive: cannot create "
        "the archive directory: "
    )


def test_another_worker_holds_the_store(
    capsys: pytest.CaptureFixture[str], configured: Path
) -> None:
    """The second worker is refused, and ``check`` says it would be."""
    configured.mkdir(parents=True, exist_ok=True)
    holder = SqliteStore(configured / "escalations.sqlite3", SystemClock())
    holder.acquire_lock(worker="the-first")
    try:
        seen = both(capsys)
    finally:
        holder.close()
    for command in ("check", "run"):
        code, line = seen[command]
        assert code == 1, command
        assert f"another worker (pid {os.getpid()}) is running on " in line
    assert seen["check"][1].endswith("`escalations run` would be refused while it runs")


def test_a_webhook_listener_without_a_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALATIONS_WEBHOOK_LISTEN", "127.0.0.1:8766")
    seen = both(capsys)
    assert seen["check"] == seen["run"]
    code, line = seen["check"]
    assert code == EX_CONFIG
    assert line.startswith("escalations: ESCALATIONS_WEBHOOK_SECRET: missing ")


def test_timeouts_that_do_not_fit_the_watchdog(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker pings the watchdog between helpdesk attempts, never during one: an attempt
    may take connect + read timeout, and with 5 s + 30 s under WatchdogSec=60s a slow
    helpdesk got a healthy worker killed. ``run`` and ``check`` now refuse such timeouts."""
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    seen = both(capsys)
    assert seen["check"] == seen["run"]
    assert seen["check"] == (
        EX_CONFIG,
        "escalations: ESCALATIONS_HTTP_READ_TIMEOUT: connect + read timeout (35 s) must be under "
        "half the watchdog interval (30 s of WatchdogSec=60s): lower "
        "ESCALATIONS_HTTP_READ_TIMEOUT or ESCALATIONS_HTTP_CONNECT_TIMEOUT, or raise "
        "WatchdogSec= in a drop-in",
    )
    monkeypatch.setenv("ESCALATIONS_HTTP_READ_TIMEOUT", "20")
    assert main(["check"]) == 0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # the watchdog of another process: not ours
    monkeypatch.setenv("ESCALATIONS_HTTP_READ_TIMEOUT", "30")
    assert main(["check"]) == 0


def test_the_proxy_setting_reaches_the_helpdesk_client(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ESCALATIONS_HTTPS_PROXY`` is the worker's only proxy: ``check --live`` (the same
    adapter ``run`` builds) asks it for a tunnel to the helpdesk; ``HTTPS_PROXY`` is not
    read."""
    from tests.connector.test_http import RecordingProxy

    configured, from_environment = RecordingProxy(), RecordingProxy()
    try:
        monkeypatch.setenv("ESCALATIONS_HTTPS_PROXY", configured.url)
        monkeypatch.setenv("ESCALATIONS_HTTP_MAX_ATTEMPTS", "1")
        for name in ("NO_PROXY", "no_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", from_environment.url)
        assert main(["check", "--live"]) != 0  # the proxy refuses the tunnel
        capsys.readouterr()
    finally:
        configured.close()
        from_environment.close()
    assert configured.lines
    assert all(line.startswith("CONNECT zammad.example.com:443 ") for line in configured.lines)
    assert from_environment.lines == []


def test_a_proxy_with_credentials_is_refused_without_showing_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALATIONS_HTTPS_PROXY", "http://admin:proxy-secret-0001@proxy:3128")
    seen = both(capsys)
    assert seen["check"] == seen["run"]
    assert seen["check"] == (
        EX_CONFIG,
        "escalations: ESCALATIONS_HTTPS_PROXY: the proxy URL must not contain credentials",
    )


def test_check_reads_the_provision_file_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken zammad-provision.toml is found by `check`, not first by `provision`."""
    import shutil

    from escalations.settings import shipped_mappings_dir

    mappings = tmp_path / "mappings"
    shutil.copytree(shipped_mappings_dir(), mappings)
    spec = mappings / "zammad-provision.toml"
    spec.write_text(spec.read_text().replace('escalate = "Escalate"', 'escalate = "Escalate'))
    monkeypatch.setenv("ESCALATIONS_MAPPINGS_DIR", str(mappings))
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(tmp_path / "state"))

    assert main(["check"]) == 78

    err = capsys.readouterr().err
    assert f"{spec}:" in err
    assert "Traceback" not in err
