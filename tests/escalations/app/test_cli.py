"""The ``escalations`` command (escalations/cli.py, escalations/commands.py): exit codes, one
clear line per user error and no traceback, ``--help`` everywhere, and README.md kept honest
about the commands and the test command (docs as tests, STYLE.md rule 38).

Most tests call ``main([...])`` in this process with a clean environment; a few start the real
module (``python -m escalations.app.cli``) in a subprocess, as systemd would."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import time_machine

from escalations.app.cli import build_parser, main
from escalations.app.provision import provision_sandbox
from escalations.clock import SystemClock
from escalations.errors import EX_CONFIG
from escalations.settings import shipped_mappings_dir
from escalations.store.base import LAST_SUCCESSFUL_POLL
from escalations.store.sqlite import SqliteStore, load_migrations
from sandbox import SandboxServer, ZammadSandbox, serve

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
BOT = "escalation-bot"
ADMIN_TOKEN = "sandbox-admin-token"  # noqa: S105 - the demo sandbox's published token
ALICE = "alice.agent@fused.example"
NOT_CONFIGURED = "no helpdesk connector is configured yet"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.fixture(autouse=True)
def env(cli_env: Path) -> Path:
    """Every CLI test runs in ``cli_env`` (conftest.py): no caller settings, its own state."""
    return cli_env


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    """The ``escalations: ...`` lines on stderr (log lines start with a level name)."""
    return [line for line in err.splitlines() if line.startswith("escalations: ")]


def run_subprocess(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "escalations", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        check=False,
    )


def broken_mappings(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the shipped mappings with one edit in process.toml."""
    directory = tmp_path / "mappings"
    shutil.copytree(shipped_mappings_dir(), directory)
    path = directory / "process.toml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return directory


def line_of(path: Path, needle: str) -> int:
    (line,) = [n for n, text in enumerate(path.read_text().splitlines(), 1) if needle in text]
    return line


# -- help and version -------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_help_works_for_every_subcommand(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: escalations {command}")


def test_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in subcommands():
        assert re.search(rf"^\s+{command}\s", out, re.MULTILINE), command


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    code, out, err = run_cli(capsys, "version")
    assert (code, out, err) == (0, f"helpdesk-escalations {project['version']}\n", "")


# -- check ------------------------------------------------------------------------------------


NEW = "would be created at first start"


def test_check_passes_on_the_shipped_mappings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, env: Path
) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", "https://zammad.example.com")
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", "check-token-0001")
    code, out, err = run_cli(capsys, "check")
    assert code == 0, err
    assert out.splitlines() == [
        f"mappings: ok ({shipped_mappings_dir()}: 4 levels, 6 reasons, 4 segments, "
        "time zone Europe/London)",
        "settings: ok (zammad at https://zammad.example.com)",
        f"state: ok (store {env}: {NEW}, archive {env / 'archive'}: {NEW}, reports "
        f"{env / 'reports'}: {NEW})",
        f"store: ok ({env / 'escalations.sqlite3'}: none yet; no other worker holds it)",
    ]
    assert error_lines(err) == []


def test_check_without_a_helpdesk_fails_as_run_would(capsys: pytest.CaptureFixture[str]) -> None:
    """``run`` refuses to start without a helpdesk; ``check`` used to say "ok"."""
    code, out, err = run_cli(capsys, "check")
    assert code == EX_CONFIG
    assert out.startswith("mappings: ok (")
    (line,) = error_lines(err)
    assert line.startswith(f"escalations: {NOT_CONFIGURED}: set ESCALATIONS_HELPDESK_URL")


def test_check_names_file_line_and_key_of_a_bad_mapping(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = broken_mappings(
        tmp_path, 'time_zone = "Europe/London"', 'time_zone = "Mars/Olympus"'
    )
    monkeypatch.setenv("ESCALATIONS_MAPPINGS_DIR", str(directory))
    code, out, err = run_cli(capsys, "check")
    path = directory / "process.toml"
    assert code == EX_CONFIG
    assert error_lines(err) == [
        f"escalations: {path}:{line_of(path, 'Mars/Olympus')}: process.time_zone: unknown time "
        "zone 'Mars/Olympus' (expected an IANA name such as 'Europe/London')"
    ]
    assert "Traceback" not in err
    assert "mappings: ok" not in out


def test_check_reports_every_problem_one_line_each(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = broken_mappings(
        tmp_path,
        'time_zone = "Europe/London"',
        'time_zone = "Mars/Olympus"\nno_such_key = 1',
    )
    monkeypatch.setenv("ESCALATIONS_MAPPINGS_DIR", str(directory))
    code, _, err = run_cli(capsys, "check")
    assert code == EX_CONFIG
    lines = error_lines(err)
    assert len(lines) == 2, lines
    for line in lines:
        assert re.match(
            rf"^escalations: {re.escape(str(directory))}/process\.toml:\d+: \S+: ", line
        )
    assert any(": process.no_such_key: " in line for line in lines)
    assert err.count("\n") == 2


def test_malformed_mapping_in_a_real_process_exits_78_without_traceback(tmp_path: Path) -> None:
    directory = broken_mappings(
        tmp_path, "rfo_required_from_level = 2", "rfo_required_from_level ="
    )
    path = directory / "process.toml"
    done = run_subprocess("check", env={"ESCALATIONS_MAPPINGS_DIR": str(directory)})
    assert done.returncode == EX_CONFIG
    line = line_of(path, "rfo_required_from_level =")
    assert (
        done.stderr == f"escalations: {path}:{line}: TOML syntax error: Invalid value (column 26)\n"
    )
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "ESCALATIONS_POLL_INTERVAL_SECONDS",
            "soon",
            "escalations: ESCALATIONS_POLL_INTERVAL_SECONDS: Input should be a valid integer",
        ),
        (
            "ESCALATIONS_HTTP_READ_TIMEOUT",
            "0",
            "escalations: ESCALATIONS_HTTP_READ_TIMEOUT: Input should be greater than 0",
        ),
        (
            "ESCALATIONS_POLL_INTERVAL",
            "30",
            "escalations: environment: ESCALATIONS_POLL_INTERVAL: unknown setting (did you mean "
            "ESCALATIONS_POLL_INTERVAL_SECONDS?)",
        ),
        (
            "ESCALATIONS_HELPDESK_URL",
            "zammad.example.com",
            "escalations: ESCALATIONS_HELPDESK_URL: Value error, must start with https://",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv(variable, value)
    code, out, err = run_cli(capsys, "check")
    assert code == EX_CONFIG
    (line,) = err.splitlines()
    assert line.startswith(expected)
    assert out == ""


def test_missing_env_file_is_a_config_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_cli(capsys, "--env-file", str(tmp_path / "nope.env"), "check")
    assert code == EX_CONFIG
    assert err == f"escalations: {tmp_path / 'nope.env'}: env file not found\n"


# -- anything a user can get wrong: one line, exit 78, no traceback (issue 10 #14) -------------


def _mappings_copy(tmp_path: Path) -> Path:
    directory = tmp_path / "mappings"
    shutil.copytree(shipped_mappings_dir(), directory)
    return directory


def _prepend(path: Path, text: str) -> None:
    path.write_text(text + path.read_text(encoding="utf-8"), encoding="utf-8")


def _deep_nesting(tmp_path: Path) -> tuple[dict[str, str], str]:
    directory = _mappings_copy(tmp_path)
    _prepend(directory / "process.toml", "x = " + "[" * 5000 + "]" * 5000 + "\n")
    return {"ESCALATIONS_MAPPINGS_DIR": str(directory)}, (
        f"{directory}/process.toml:1: x: nested too deeply (5000 levels of arrays or inline tables)"
    )


def _huge_integer(tmp_path: Path) -> tuple[dict[str, str], str]:
    directory = _mappings_copy(tmp_path)
    _prepend(directory / "process.toml", "x = " + "7" * 5000 + "\n")
    return {"ESCALATIONS_MAPPINGS_DIR": str(directory)}, (
        f"{directory}/process.toml:1: x: a number with 5000 digits is too long (at most 4300)"
    )


def _standard_key_as_field(tmp_path: Path) -> tuple[dict[str, str], str]:
    directory = _mappings_copy(tmp_path)
    path = directory / "zammad.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('rfo = "escalation_rfo"', 'rfo = "owner"'), encoding="utf-8")
    return {"ESCALATIONS_MAPPINGS_DIR": str(directory)}, (
        f"{path}:{line_of(path, 'rfo = ')}: fields.rfo: 'owner' is a standard Zammad ticket "
        "attribute, not a custom one (name the custom attribute created for this purpose)"
    )


def _env_file(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "escalations.env"
    path.write_bytes(content)
    return path


def _env_not_utf8(tmp_path: Path) -> tuple[dict[str, str], str]:
    path = _env_file(tmp_path, b"# Z\xfcrich office\nESCALATIONS_LOG_LEVEL=INFO\n")
    return {"--env-file": str(path)}, f"{path}:1: the env file is not UTF-8 text (save it as UTF-8)"


def _env_no_equals(tmp_path: Path) -> tuple[dict[str, str], str]:
    path = _env_file(
        tmp_path, b"ESCALATIONS_LOG_LEVEL=INFO\nESCALATIONS_POLL_INTERVAL_SECONDS 45\n"
    )
    return {"--env-file": str(path)}, f"{path}:2: not a setting: no '=' (expected NAME=value)"


def _env_unterminated_quote(tmp_path: Path) -> tuple[dict[str, str], str]:
    path = _env_file(tmp_path, b'# x\nESCALATIONS_HELPDESK_URL="https://z.example\n')
    return {"--env-file": str(path)}, (
        f'{path}:2: ESCALATIONS_HELPDESK_URL: unterminated " quote: the value would run to the '
        "end of the file"
    )


def _env_typos(tmp_path: Path) -> tuple[dict[str, str], str]:
    path = _env_file(tmp_path, b"TZ=UTC\nESCALATIONS_LOG_LEVL=DEBUG\nESCALATIONS_POLL=1\n")
    return {"--env-file": str(path)}, (
        f"{path}:2: ESCALATIONS_LOG_LEVL: unknown setting (did you mean ESCALATIONS_LOG_LEVEL?)\n"
        f"escalations: {path}:3: ESCALATIONS_POLL: unknown setting"  # nothing close enough
    )


def _credential_not_utf8(tmp_path: Path) -> tuple[dict[str, str], str]:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "helpdesk-token").write_bytes(b"\xff\xfet\x00o\x00k\x00")  # saved as UTF-16
    return {"CREDENTIALS_DIRECTORY": str(creds)}, (
        f"{creds}/helpdesk-token: the credential is not UTF-8 text (save it as UTF-8)"
    )


def _url(url: str, message: str) -> object:
    def case(tmp_path: Path) -> tuple[dict[str, str], str]:
        return {"ESCALATIONS_HELPDESK_URL": url, "ESCALATIONS_HELPDESK_TOKEN": "t"}, (
            f"ESCALATIONS_HELPDESK_URL: Value error, {message}"
        )

    return case


def _state_under_a_file(tmp_path: Path) -> tuple[dict[str, str], str]:
    (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    return {"ESCALATIONS_STATE_DIR": f"{tmp_path}/passwd/x"}, (
        f"ESCALATIONS_STATE_DIR: {tmp_path}/passwd/x cannot be created: {tmp_path}/passwd is a "
        "file, not a directory"
    )


def _database_under_a_file(tmp_path: Path) -> tuple[dict[str, str], str]:
    (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    return {"ESCALATIONS_DATABASE_URL": f"sqlite:///{tmp_path}/passwd/x.sqlite3"}, (
        f"ESCALATIONS_DATABASE_URL: {tmp_path}/passwd is a file, not a directory"
    )


USER_MISTAKES = {
    "mappings nested 5000 deep": _deep_nesting,
    "mappings with a 5000-digit integer": _huge_integer,
    "standard ticket key as a custom field": _standard_key_as_field,
    "env file not UTF-8": _env_not_utf8,
    "env file line without =": _env_no_equals,
    "env file unterminated quote": _env_unterminated_quote,
    "env file with two typos": _env_typos,
    "credential not UTF-8": _credential_not_utf8,
    "URL with an open IPv6 bracket": _url("https://[::1", "not a valid URL (Invalid IPv6 URL)"),
    "URL with port 99999": _url(
        "https://zammad.example.com:99999", "not a valid URL (Port out of range 0-65535)"
    ),
    "URL with a space in the host": _url(
        "https://zammad example.com", "contains whitespace or control characters"
    ),
    "URL with a user and password": _url(
        "https://bot:hunter2-pw@zammad.example.com",
        "must not hold a user name or password (https://***@zammad.example.com); put the token "
        "in ESCALATIONS_HELPDESK_TOKEN or the helpdesk-token credential",
    ),
    "state directory under a regular file": _state_under_a_file,
    "database under a regular file": _database_under_a_file,
}


def _apply(monkeypatch: pytest.MonkeyPatch, setup: dict[str, str], command: list[str]) -> list[str]:
    argv = []
    for key, value in setup.items():
        if key.startswith("--"):
            argv += [key, value]
        else:
            monkeypatch.setenv(key, value)
    return [*argv, *command]


@pytest.mark.parametrize("case", USER_MISTAKES.values(), ids=USER_MISTAKES.keys())
def test_a_user_mistake_is_one_line_and_exit_78(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, case: Any
) -> None:
    setup, expected = case(tmp_path)
    code, out, err = run_cli(capsys, *_apply(monkeypatch, setup, ["check"]))
    assert (code, out, err) == (EX_CONFIG, "", f"escalations: {expected}\n")


@pytest.mark.parametrize(
    "name",
    [
        "URL with an open IPv6 bracket",
        "URL with port 99999",
        "URL with a space in the host",
        "URL with a user and password",
        "state directory under a regular file",
        "database under a regular file",
    ],
)
@pytest.mark.parametrize("command", [["run", "--once"], ["status"], ["effects", "list"]])
def test_run_and_status_refuse_the_same_mistakes_before_any_work(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    env: Path,
    name: str,
    command: list[str],
) -> None:
    setup, expected = USER_MISTAKES[name](tmp_path)
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", "t")
    if "ESCALATIONS_HELPDESK_URL" not in setup:
        monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", "https://zammad.example.com")
    code, out, err = run_cli(capsys, *_apply(monkeypatch, setup, command))
    assert (code, out, err) == (EX_CONFIG, "", f"escalations: {expected}\n")
    assert not env.exists()


@pytest.mark.parametrize(
    "command",
    [["check"], ["status"], ["diagnostics"], ["diagnostics", "--json"], ["run", "--once"]],
)
@pytest.mark.parametrize("where", ["environment", "env file"])
def test_a_password_in_the_helpdesk_url_is_never_printed(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: list[str],
    where: str,
) -> None:
    """``check`` used to print it in its "ok" line."""
    url = "https://bot:hunter2-pw@zammad.example.com"
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", "t")
    if where == "environment":
        monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", url)
        argv = command
    else:
        argv = [
            *command,
            "--env-file",
            str(_env_file(tmp_path, f"ESCALATIONS_HELPDESK_URL={url}\n".encode())),
        ]
    code, out, err = run_cli(capsys, *argv)
    assert "hunter2" not in out + err
    assert "https://***@zammad.example.com" in out + err
    if command[0] != "diagnostics":  # diagnostics reports a broken setting inside the bundle
        assert code == EX_CONFIG


# -- --env-file before or after the command ---------------------------------------------------


def _all_parsers(
    parser: argparse.ArgumentParser, name: str = "escalations"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{name} {sub_name}")


def test_every_command_and_action_takes_env_file() -> None:
    names = []
    for name, parser in _all_parsers(build_parser()):
        names.append(name)
        options = {o for a in parser._actions for o in a.option_strings}
        assert "--env-file" in options, name
    assert {"escalations effects list", "escalations archive verify"} <= set(names)


@pytest.mark.parametrize(
    "argv",
    [
        ["--env-file", "F", "check"],
        ["check", "--env-file", "F"],
        ["check", "--env-file", "F", "--live"],
        ["--env-file", "F", "status"],
        ["status", "--env-file", "F", "--json"],
        ["effects", "list", "--env-file", "F"],
        ["effects", "--env-file", "F", "list"],
        ["--env-file", "F", "effects", "list", "--failed"],
        ["archive", "verify", "--env-file", "F"],
        ["--env-file", "other", "archive", "verify", "--env-file", "F"],
        ["run", "--once", "--env-file", "F"],
    ],
)
def test_env_file_is_taken_before_or_after_the_command(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).env_file == Path("F")


@pytest.mark.parametrize("argv", [["check"], ["status"], ["effects", "list"], ["version"]])
def test_env_file_is_none_when_not_given(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).env_file is None


@pytest.mark.parametrize(
    "command",
    [["check"], ["status"], ["effects", "list"], ["archive", "verify"], ["run", "--once"]],
)
@pytest.mark.parametrize("position", ["before", "after"])
def test_env_file_is_read_wherever_it_is_given(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str], position: str
) -> None:
    path = _env_file(tmp_path, b"ESCALATIONS_LOG_LEVL=DEBUG\n")
    option = ["--env-file", str(path)]
    argv = [*option, *command] if position == "before" else [*command, *option]
    code, out, err = run_cli(capsys, *argv)
    assert (code, out, err) == (
        EX_CONFIG,
        "",
        f"escalations: {path}:1: ESCALATIONS_LOG_LEVL: unknown setting (did you mean "
        "ESCALATIONS_LOG_LEVEL?)\n",
    )


def test_check_with_env_file_after_the_command_uses_its_settings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _env_file(
        tmp_path,
        b"TZ=UTC\nESCALATIONS_HELPDESK_URL=https://from-file.example\n"
        b"ESCALATIONS_HELPDESK_TOKEN='file-token-0001'\n",
    )
    code, out, err = run_cli(capsys, "check", "--env-file", str(path))
    assert code == 0, err
    assert "settings: ok (zammad at https://from-file.example)" in out.splitlines()


def test_env_file_after_the_command_in_a_real_process(tmp_path: Path) -> None:
    path = _env_file(tmp_path, b"ESCALATIONS_POLL_INTERVALL_SECONDS=5\n")
    done = run_subprocess("archive", "verify", "--env-file", str(path))
    assert (done.returncode, done.stdout) == (EX_CONFIG, "")
    assert done.stderr == (
        f"escalations: {path}:1: ESCALATIONS_POLL_INTERVALL_SECONDS: unknown setting (did you "
        "mean ESCALATIONS_POLL_INTERVAL_SECONDS?)\n"
    )


def test_deep_mappings_in_a_real_process_exit_78_without_traceback(tmp_path: Path) -> None:
    setup, expected = _deep_nesting(tmp_path)
    done = run_subprocess("check", env=setup)
    assert (done.returncode, done.stdout, done.stderr) == (
        EX_CONFIG,
        "",
        f"escalations: {expected}\n",
    )


def test_a_store_that_cannot_be_created_is_a_config_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    state = locked / "state"
    if os.access(locked, os.W_OK):  # root may write anywhere, but not into /proc
        state = Path("/proc/self/escalations-state")
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(state))
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", "https://zammad.example.com")
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", "t")
    for command in ("run", "check"):  # the same refusal from both
        code, out, err = (
            run_cli(capsys, command, "--once") if command == "run" else run_cli(capsys, command)
        )
        assert code == EX_CONFIG
        assert re.fullmatch(
            rf"escalations: ESCALATIONS_STATE_DIR: {re.escape(str(state))}: cannot create the "
            r"store directory: [A-Z][^\n]+ \(set ESCALATIONS_STATE_DIR to a directory this user "
            r"may write\)\n",
            err,
        ), err


# -- run: refusals before any work ------------------------------------------------------------


def test_run_once_without_a_helpdesk_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], env: Path
) -> None:
    code, out, err = run_cli(capsys, "run", "--once")
    assert code == EX_CONFIG
    (line,) = err.splitlines()
    assert line.startswith(f"escalations: {NOT_CONFIGURED}: set ESCALATIONS_HELPDESK_URL")
    assert out == ""
    assert not (env / "escalations.sqlite3").exists()


def test_run_at_needs_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "run", "--at", "2026-12-01T09:30:00Z")
    assert code == EX_CONFIG
    assert err == "escalations: --at needs --once (a single pass as of that instant)\n"


@pytest.mark.parametrize("value", ["not-a-time", "2026-12-01T09:30:00"])
def test_run_at_an_unreadable_instant(capsys: pytest.CaptureFixture[str], value: str) -> None:
    code, _, err = run_cli(capsys, "run", "--once", "--at", value)
    assert code == EX_CONFIG
    assert err == (
        f"escalations: --at: '{value}' is not an instant with a time zone "
        "(ISO-8601, e.g. 2026-12-01T09:30:00Z)\n"
    )


def test_run_once_in_a_real_process_without_a_helpdesk() -> None:
    done = run_subprocess("run", "--once")
    assert done.returncode == EX_CONFIG
    assert done.stderr.startswith(f"escalations: {NOT_CONFIGURED}: ")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


# -- against a loopback sandbox: check --live, run --once, status -----------------------------


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    """The demo sandbox on a loopback port, and the environment pointing the CLI at it."""
    sandbox = ZammadSandbox.demo()
    with serve(sandbox, host="127.0.0.1", port=0) as running:
        # provisioned, as `escalations sandbox` serves it
        provision_sandbox(running.url, ADMIN_TOKEN, SystemClock(), shipped_mappings_dir())
        monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", running.url)
        monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", sandbox.token_of(BOT))
        monkeypatch.setenv("ESCALATIONS_HTTP_REQUESTS_PER_MINUTE", "6000")
        monkeypatch.setenv("ESCALATIONS_HTTP_MAX_ATTEMPTS", "1")
        yield running


def test_check_live_passes_against_the_demo_sandbox(
    capsys: pytest.CaptureFixture[str], server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the admin token every list provision writes is compared: nothing unverified."""
    monkeypatch.setenv("ESCALATIONS_HELPDESK_ADMIN_TOKEN", ADMIN_TOKEN)
    code, out, err = run_cli(capsys, "check", "--live")
    assert code == 0, err
    assert out.splitlines()[-1] == (
        f"helpdesk: ok ({server.url}, with the admin token: the worker's user and group access, "
        "tags, people; as provision makes them: ticket attributes, states, groups, macros, "
        "overviews, text modules)"
    )
    assert error_lines(err) == []
    assert "WARNING" not in err


def test_check_live_with_the_worker_token_names_what_it_could_not_verify(
    capsys: pytest.CaptureFixture[str], server: SandboxServer
) -> None:
    code, out, err = run_cli(capsys, "check", "--live")
    assert code == EX_CONFIG
    assert error_lines(err) == [
        "escalations: live: options of the level, reason and segment attributes: not verified "
        "(the worker's token sees attribute names on a ticket, not their options; set "
        "ESCALATIONS_HELPDESK_ADMIN_TOKEN)",
        f"escalations: live: overviews ({shipped_mappings_dir() / 'zammad-provision.toml'}): "
        "not verified (the token may not read them; set ESCALATIONS_HELPDESK_ADMIN_TOKEN for "
        "check --live)",
        "escalations: live: 2 thing(s) above not verified with the worker's token; "
        "`check --live --allow-unverified` accepts that",
    ]
    assert "helpdesk: ok" not in out

    code, out, err = run_cli(capsys, "check", "--live", "--allow-unverified")
    assert code == 0, err
    assert out.splitlines()[-1].endswith(
        "as provision makes them: states, groups, macros, text modules; some not verified (above))"
    )


def test_check_live_on_an_empty_helpdesk_does_not_claim_the_fields(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ticket to read attribute names from, no admin token: the fields are not verified,
    and the check says so and fails (it used to say every field was found)."""
    sandbox = ZammadSandbox.demo()
    with sandbox.lock:
        sandbox.state.db.tickets.clear()
    with serve(sandbox, host="127.0.0.1", port=0) as running:
        monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", running.url)
        monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", sandbox.token_of(BOT))
        monkeypatch.setenv("ESCALATIONS_HTTP_REQUESTS_PER_MINUTE", "6000")
        code, out, err = run_cli(capsys, "check", "--live", "--allow-unverified")
    assert code == EX_CONFIG  # the demo data is not provisioned: macros are missing
    assert any("ticket attributes: not verified" in line for line in error_lines(err))
    assert any("macro 'Escalate' not found" in line for line in error_lines(err))
    assert "every field" not in out
    assert "WARNING" not in err  # the expected 403 of the object manager is not a warning


def test_check_live_reports_a_missing_field(
    capsys: pytest.CaptureFixture[str], server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_ADMIN_TOKEN", ADMIN_TOKEN)
    sandbox = server.sandbox
    with sandbox.lock:
        attributes = sandbox.state.db.attributes
        (attr_id,) = [i for i, a in attributes.items() if a.name == "escalation_rfo"]
        del attributes[attr_id]
    code, out, err = run_cli(capsys, "check", "--live")
    assert code == EX_CONFIG
    assert error_lines(err) == [
        f"escalations: live: {shipped_mappings_dir() / 'zammad.toml'}: fields.rfo: "
        "ticket attribute 'escalation_rfo' not found"
    ]
    assert "helpdesk: ok" not in out
    assert "Traceback" not in err


def test_check_live_reports_a_macro_changed_to_do_nothing(
    capsys: pytest.CaptureFixture[str], server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provisioned macro changed by hand: an added action is a note; a macro that no longer
    sets the flag is a problem (agents' clicks would flag nothing)."""
    monkeypatch.setenv("ESCALATIONS_HELPDESK_ADMIN_TOKEN", ADMIN_TOKEN)
    admin = {"Authorization": f"Token token={ADMIN_TOKEN}"}
    macros = requests.get(f"{server.url}/api/v1/macros", headers=admin, timeout=5).json()
    (escalate,) = [m for m in macros if m["name"] == "Escalate"]

    def perform(value: dict[str, Any]) -> None:
        requests.put(
            f"{server.url}/api/v1/macros/{escalate['id']}",
            json={"perform": value},
            headers=admin,
            timeout=5,
        ).raise_for_status()

    perform({**escalate["perform"], "ticket.priority_id": {"value": "3"}})
    code, out, err = run_cli(capsys, "check", "--live")
    assert code == 0, err
    (note,) = [line for line in out.splitlines() if line.startswith("live: note:")]
    assert note.startswith("live: note: macro 'Escalate' was changed by hand (perform: ")

    perform({"ticket.priority_id": {"value": "2"}})
    code, out, err = run_cli(capsys, "check", "--live")
    assert code == EX_CONFIG
    (line,) = error_lines(err)
    assert line.startswith(
        "escalations: live: macro 'Escalate' was changed by hand and no longer performs what "
        "the worker relies on (perform: "
    )
    assert line.endswith("escalations provision --force restores it")


def test_check_live_with_a_wrong_token(
    capsys: pytest.CaptureFixture[str], server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", "not-the-token")
    code, _, err = run_cli(capsys, "check", "--live")
    assert code == EX_CONFIG
    assert error_lines(err) == [
        "escalations: live: the token was refused (401): check ESCALATIONS_HELPDESK_TOKEN"
    ]
    assert "Traceback" not in err


def test_check_live_without_a_helpdesk(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "check", "--live")
    assert code == EX_CONFIG
    (line,) = error_lines(err)
    assert line.startswith(f"escalations: {NOT_CONFIGURED}: ")
    assert out.startswith("mappings: ok (")
    assert "settings: ok" not in out


def test_check_live_when_the_helpdesk_is_down(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(ZammadSandbox.demo()) as gone:
        url = gone.url  # a loopback port nobody listens on any more
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", url)
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", "some-token")
    monkeypatch.setenv("ESCALATIONS_HTTP_MAX_ATTEMPTS", "1")
    code, _, err = run_cli(capsys, "check", "--live")
    assert code == 1
    (line,) = error_lines(err)
    assert line.startswith("escalations: helpdesk error: ")
    assert "GET /api/v1/users/me" in line
    assert "some-token" not in err
    assert "Traceback" not in err


def test_status_before_the_worker_has_run(capsys: pytest.CaptureFixture[str], env: Path) -> None:
    code, out, err = run_cli(capsys, "status")
    assert code == 2, err  # down: a monitoring check must not call this healthy
    assert out == (
        f"store: {env / 'escalations.sqlite3'} does not exist yet (the worker has not run)\n"
        "health: down: no successful poll yet\n"
    )
    assert not (env / "escalations.sqlite3").exists()
    code, out, _ = run_cli(capsys, "status", "--json")
    assert code == 2
    data = json.loads(out)
    assert data["health"] == {"code": 2, "status": "down", "detail": "down: no successful poll yet"}
    assert data["store_schema"] is None


def test_status_after_a_pass(
    capsys: pytest.CaptureFixture[str], server: SandboxServer, env: Path
) -> None:
    # on a Saturday: on a weekday in business hours the residential plan has a call due now
    with time_machine.travel(datetime(2026, 12, 5, 10, 0, tzinfo=UTC), tick=True):
        _status_after_a_pass(capsys, server, env)


def _status_after_a_pass(
    capsys: pytest.CaptureFixture[str], server: SandboxServer, env: Path
) -> None:
    sandbox = server.sandbox
    (ticket_id,) = [
        i for i, t in sandbox.tickets.items() if t["title"] == "Broadband down since Monday"
    ]
    sandbox.agent_update(
        ticket_id,
        ALICE,
        escalation_requested=True,
        escalation_reason="outage_beyond_sla",
        customer_segment="residential",
    )

    code, _, err = run_cli(capsys, "run", "--once")
    assert code == 0, err
    assert [t for t in sandbox.tickets.values() if t.get("escalation_key")], "no escalation"

    code, out, err = run_cli(capsys, "status")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"store: {env / 'escalations.sqlite3'} (schema {len(load_migrations())})"
    assert lines[1] == "open escalations:"
    assert re.fullmatch(r"  level 1  open\s+1", lines[2]), lines[2]
    assert lines[3] == "duties due: 0, missed: 0"
    effects = dict(part.rsplit(" ", 1) for part in lines[4].removeprefix("effects: ").split(", "))
    assert int(effects["done"]) >= 4
    assert effects["failed"] == "0"
    assert effects["pending"] == "0"
    assert re.fullmatch(
        r"last successful poll: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", lines[5]
    ), lines[5]
    assert lines[6] == "health: healthy"
    assert len(lines) == 7  # no "last errors"
    code, out, _ = run_cli(capsys, "status", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["schema"], data["version"]) == ("helpdesk-escalations/status", 1)
    assert data["escalations"] == [{"state": "open", "level": 1, "count": 1}]
    assert data["effects"]["failed"] == 0
    assert data["health"]["status"] == "healthy"


def test_status_lists_what_failed_and_why(
    capsys: pytest.CaptureFixture[str], server: SandboxServer, env: Path
) -> None:
    from sandbox import ServerError

    sandbox = server.sandbox
    (ticket_id,) = [
        i for i, t in sandbox.tickets.items() if t["title"] == "Broadband down since Monday"
    ]
    sandbox.agent_update(ticket_id, ALICE, escalation_requested=True)
    sandbox.faults.add(ServerError(method="POST", path="/api/v1/tickets$", times=1, status=422))
    code, _, err = run_cli(capsys, "run", "--once")
    assert code == 0, err
    code, out, err = run_cli(capsys, "status")
    assert code == 1, err  # degraded
    assert out.splitlines()[-1] == "health: degraded: 1 failed effect"
    assert re.search(r"effects: .*failed 1", out), out
    assert re.search(
        rf"  failed create_escalation zammad:ticket:{ticket_id}:1 \(ticket {ticket_id}\): "
        r"Rejected: .*422",
        out,
    ), out


# -- docs as tests ----------------------------------------------------------------------------


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no '## {heading}' section"
    return match.group(1)


def test_readme_test_command_is_what_ci_runs() -> None:
    quick_start = _section(README.read_text(), "Quick start")
    blocks = re.findall(r"^```sh\n(.*?)^```", quick_start, re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 2, "Quick start needs the demo block and the test block"
    command = blocks[1].strip().split(" && ")[-1]
    assert command == ".venv/bin/python -m pytest -q"
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command.removeprefix(".venv/bin/") in ci_lines
    assert "python -m pip install --quiet -e '.[test]'" in ci_lines
    assert ".venv/bin/pip install -q -e '.[test]'" in blocks[1]


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_subcommand_is_in_the_readme_command_table(command: str) -> None:
    table = _section(README.read_text(), "Commands")
    assert re.search(rf"^\| `escalations {command}\b", table, re.MULTILINE), (
        f"`escalations {command}` is missing from README.md's command table"
    )


def test_status_into_a_closed_pipe_ends_quietly(env: Path) -> None:
    """``escalations status | head -1`` used to end in a BrokenPipeError traceback: here the
    reader has gone before the first line is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "escalations", "status"],
            env={**os.environ, "ESCALATIONS_STATE_DIR": str(env), "PYTHONPATH": str(ROOT)},
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "BrokenPipeError" not in proc.stderr
    assert proc.returncode == 2  # the health code (down: no poll yet), not 0 for "quiet"


def test_status_into_a_closed_pipe_still_exits_with_the_health_code(env: Path) -> None:
    """A monitoring check piping ``status`` into ``head -1`` reads the exit code: a closed
    pipe used to turn "down" into 0. Here the store exists and the status is long (a
    store that is degraded: its last successful poll is 10 intervals old)."""
    store = SqliteStore(env / "escalations.sqlite3", SystemClock())
    late = SystemClock().now() - timedelta(seconds=10 * 30)
    with store.transaction() as tx:
        store.set_meta(tx, LAST_SUCCESSFUL_POLL, late.isoformat())
    store.close()
    for argv in (["status"], ["status", "--json"]):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "escalations", *argv],
                env={**os.environ, "ESCALATIONS_STATE_DIR": str(env), "PYTHONPATH": str(ROOT)},
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            os.close(write_end)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode == 1, (argv, proc.stderr)  # degraded


@pytest.mark.parametrize(
    "argv", [["frobnicate"], ["status", "--frobnicate"], ["effects", "retry"], []]
)
def test_a_usage_error_exits_64_never_a_health_code(argv: list[str]) -> None:
    """argparse's own exit 2 meant "down" to a monitoring check reading ``status``'s code."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 64


def test_check_live_notes_a_worker_token_with_admin_rights(
    capsys: pytest.CaptureFixture[str], server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's token should carry ticket.agent only: one that reads the object manager,
    or is the admin token itself, is pointed out (not a failure)."""
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", ADMIN_TOKEN)
    code, out, err = run_cli(capsys, "check", "--live", "--allow-unverified")
    assert code == 0, err
    assert (
        "live: note: the worker's token (user 'admin@fused.example') may read the object "
        "manager (an admin permission): it needs ticket.agent only (docs/admins.md §1)"
    ) in out.splitlines()

    monkeypatch.setenv("ESCALATIONS_HELPDESK_ADMIN_TOKEN", ADMIN_TOKEN)
    code, out, err = run_cli(capsys, "check", "--live")
    assert code == 0, err
    assert any("the worker's token is the admin token" in line for line in out.splitlines())


def test_check_live_with_an_admin_token_lacking_admin_rights_says_each_refusal_once(
    capsys: pytest.CaptureFixture[str], server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An "admin" token with ticket.agent only: each list it was refused is one line naming
    the permission it lacks — no WARNING for it, no advice to set the admin token it is."""
    sandbox = server.sandbox
    monkeypatch.setenv(
        "ESCALATIONS_HELPDESK_ADMIN_TOKEN",
        sandbox.issue_token("alice.agent@fused.example", ("ticket.agent",)),
    )
    code, out, err = run_cli(capsys, "check", "--live")
    assert code == EX_CONFIG
    assert error_lines(err) == [
        "escalations: live: ticket attributes: not verified (HTTP 403 forbidden: Not "
        "authorized; to list object_manager_attributes the token needs the admin.object "
        "permission (GET /api/v1/object_manager_attributes -> 403))",
        "escalations: live: overviews: not verified (HTTP 403 forbidden: Not authorized; to "
        "list overviews the token needs the admin.overview permission (GET /api/v1/overviews "
        "-> 403))",
        "escalations: live: 2 thing(s) above not verified with the admin token; "
        "`check --live --allow-unverified` accepts that",
    ]
    assert "WARNING" not in err
