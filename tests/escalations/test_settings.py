from __future__ import annotations

import re
from pathlib import Path

import pytest

from escalations.errors import ConfigError
from escalations.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith(ENV_PREFIX) or key in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))


def _names() -> list[str]:
    return [ENV_PREFIX + name.upper() for name in Settings.model_fields]


@pytest.mark.parametrize("name", _names())
def test_every_setting_is_documented_with_its_default(name: str) -> None:
    example = (ROOT / "settings.example.env").read_text()
    assert re.search(rf"^#?{name}=", example, re.MULTILINE), f"{name} not in settings.example.env"
    assert "Default" in example or "default" in example
    readme = (ROOT / "README.md").read_text()
    assert f"`{name}`" in readme, f"{name} not in README.md's settings table"


def test_example_env_file_loads_cleanly() -> None:
    settings = load_settings(ROOT / "settings.example.env")
    assert settings.poll_interval_seconds == 30
    assert settings.helpdesk == "zammad"


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.database_path == tmp_path / "state" / "escalations.sqlite3"
    assert settings.http_requests_per_minute == 60
    assert settings.mappings_dir.joinpath("process.toml").exists()
    assert not settings.helpdesk_configured


def test_env_file_in_systemd_syntax(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_text(
        "# comment\nESCALATIONS_POLL_INTERVAL_SECONDS=45\n"
        'ESCALATIONS_HELPDESK_URL="https://zammad.example.com/"\n'
    )
    settings = load_settings(env)
    assert settings.poll_interval_seconds == 45
    assert settings.helpdesk_url == "https://zammad.example.com"


def test_environment_overrides_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "env"
    env.write_text("ESCALATIONS_POLL_INTERVAL_SECONDS=45\n")
    monkeypatch.setenv("ESCALATIONS_POLL_INTERVAL_SECONDS", "12")
    assert load_settings(env).poll_interval_seconds == 12


def test_typo_in_env_file_names_file_and_setting(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_text("ESCALATIONS_POLL_INTERVALL_SECONDS=45\n")
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    assert str(env) in str(err.value)
    assert "ESCALATIONS_POLL_INTERVALL_SECONDS" in str(err.value)


def test_typo_in_environment_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATIONS_LOGLEVEL", "DEBUG")
    with pytest.raises(ConfigError, match="ESCALATIONS_LOGLEVEL"):
        load_settings()


def test_bad_value_is_one_line_per_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATIONS_POLL_INTERVAL_SECONDS", "soon")
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", "zammad.example.com")
    with pytest.raises(ConfigError) as err:
        load_settings()
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert any(line.startswith("ESCALATIONS_POLL_INTERVAL_SECONDS:") for line in lines)
    assert any(line.startswith("ESCALATIONS_HELPDESK_URL:") for line in lines)


def test_missing_env_file() -> None:
    with pytest.raises(ConfigError, match="env file not found"):
        load_settings(Path("/nonexistent/env"))


def test_unsupported_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATIONS_DATABASE_URL", "mysql://x")
    with pytest.raises(ConfigError, match="unsupported database"):
        load_settings()


def test_token_from_systemd_credentials_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "helpdesk-token").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", "from-env")
    settings = load_settings()
    assert settings.helpdesk_token is not None
    assert settings.helpdesk_token.get_secret_value() == "from-credential"


def test_token_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_TOKEN", "witness-s3cr3t-token")
    settings = load_settings()
    assert "witness-s3cr3t-token" not in repr(settings)
    assert "witness-s3cr3t-token" not in str(settings)
    assert "**********" in repr(settings)


# -- user-caused problems are one ConfigError each, never a traceback (issue 10 #14) ---------


def config_error(env_file: Path | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        load_settings(env_file)
    return str(err.value)


def test_env_file_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_bytes(b"# ok\nESCALATIONS_HELPDESK_URL=https://z\xe9.example\n")
    assert config_error(env) == f"{env}:2: the env file is not UTF-8 text (save it as UTF-8)"


def test_credential_not_utf8_names_the_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "helpdesk-token").write_bytes(b"s3cr\xe9t\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert config_error() == (
        f"{creds / 'helpdesk-token'}: the credential is not UTF-8 text (save it as UTF-8)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "ESCALATIONS_LOG_LEVEL=DEBUG\nno equals sign here\n",
            ["{env}:2: not a setting: no '=' (expected NAME=value)"],
        ),
        ("ESCALATIONS_LOG_LEVEL\n", ["{env}:1: not a setting: no '=' (expected NAME=value)"]),
        (
            '# url\nESCALATIONS_HELPDESK_URL="https://z.example\nESCALATIONS_LOG_LEVEL=DEBUG\n',
            ["{env}:2: ESCALATIONS_HELPDESK_URL: cannot parse the value (unterminated quote?)"],
        ),
        (
            "export ESCALATIONS_HELPDESK_URL='https://z.example\n",
            ["{env}:1: ESCALATIONS_HELPDESK_URL: cannot parse the value (unterminated quote?)"],
        ),
        (
            "just-the-token\n\nESCALATIONS_LOG_LEVEL=DEBUG\nESCALATIONS_POLL\n",
            [
                "{env}:1: not a setting: no '=' (expected NAME=value)",
                "{env}:4: not a setting: no '=' (expected NAME=value)",
            ],
        ),
    ],
    ids=["no equals", "name only", "unterminated quote", "export, single quote", "two"],
)
def test_env_file_line_that_cannot_be_read_is_reported(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    env = tmp_path / "env"
    env.write_text(text)
    message = config_error(env)
    assert message.splitlines() == [line.format(env=env) for line in expected]
    assert "just-the-token" not in message  # a line may be a secret: it is never echoed


def test_env_file_forms_that_are_fine(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_text(
        "# comment\n\n   \nexport ESCALATIONS_LOG_LEVEL=debug\n"
        "ESCALATIONS_HELPDESK_URL='https://zammad.example.com'\n"
        'ESCALATIONS_HELPDESK_TOKEN="abc"  # trailing comment\nESCALATIONS_ARCHIVE_DIR=\n'
    )
    settings = load_settings(env)
    assert settings.log_level == "DEBUG"
    assert settings.helpdesk_url == "https://zammad.example.com"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://[::1", "not a valid URL (Invalid IPv6 URL)"),
        ("https://zammad.example.com:99999", "not a valid URL (Port out of range 0-65535)"),
        ("https://zammad.example.com:https", "not a valid URL (Port could not be cast"),
        ("https://zam mad.example.com", "contains whitespace or control characters"),
        ("https://zammad.example.com\t/x", "contains whitespace or control characters"),
        ("https://zammad!.example.com", "host 'zammad!.example.com' is not a host name"),
        ("https://a..b.example", "host 'a..b.example' is not a host name"),
        ("https://:443/", "has no host name"),
        ("https://[fe80::1%25eth0]", "host 'fe80::1%25eth0' is not an IPv6 address"),
    ],
)
def test_helpdesk_url_the_http_library_would_refuse(
    monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", url)
    (line,) = config_error().splitlines()
    assert line.startswith(f"ESCALATIONS_HELPDESK_URL: Value error, {message}")


@pytest.mark.parametrize(
    "url",
    [
        "https://zammad.example.com",
        "https://zammad.example.com:8443/helpdesk/",
        "http://127.0.0.1:8765",
        "https://[::1]:8080",
        "https://zammad_internal.corp",
        "https://zämmad.example",
    ],
)
def test_helpdesk_urls_that_are_fine(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", url)
    assert load_settings().helpdesk_url == url.rstrip("/")


@pytest.fixture
def regular_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a directory\n")
    return path


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ESCALATIONS_STATE_DIR", "{file}/x", "{file}/x cannot be created: {file} is a file"),
        ("ESCALATIONS_STATE_DIR", "{file}", "{file} is a file"),
        (
            "ESCALATIONS_DATABASE_URL",
            "sqlite:///{file}/deeper/x.sqlite3",
            "{file}/deeper cannot be created: {file} is a file",
        ),
        ("ESCALATIONS_ARCHIVE_DIR", "{file}/archive", "{file}/archive cannot be created"),
        ("ESCALATIONS_REPORTS_DIR", "{file}/reports", "{file}/reports cannot be created"),
    ],
)
def test_a_store_or_directory_under_a_regular_file(
    monkeypatch: pytest.MonkeyPatch, regular_file: Path, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value.format(file=regular_file))
    message = config_error()
    assert message.startswith(f"{variable}: {expected.format(file=regular_file)}")
    assert message.endswith("is a file, not a directory")


def test_a_database_path_that_is_a_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ESCALATIONS_DATABASE_URL", f"sqlite:///{tmp_path}")
    assert config_error() == (
        f"ESCALATIONS_DATABASE_URL: {tmp_path} is a directory, not a database file"
    )
