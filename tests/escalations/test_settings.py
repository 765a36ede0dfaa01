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
            "ESCALATIONS_LOG_LEVEL=DEBUG\nESCALATIONS_POLL_INTERVAL_SECONDS 45\n",
            ["{env}:2: not a setting: no '=' (expected NAME=value)"],
        ),
        ("ESCALATIONS_LOG_LEVEL\n", ["{env}:1: not a setting: no '=' (expected NAME=value)"]),
        (
            '# url\nESCALATIONS_HELPDESK_URL="https://z.example\nESCALATIONS_LOG_LEVEL=DEBUG\n',
            [
                '{env}:2: ESCALATIONS_HELPDESK_URL: unterminated " quote: the value would run '
                "to the end of the file"
            ],
        ),
        (
            "export ESCALATIONS_HELPDESK_URL='https://z.example\n",
            ["{env}:1: unterminated ' quote: the value would run to the end of the file"],
        ),
        (
            "just-the-token\nESCALATIONS_HELPDESK_TOKEN just-the-token\n\n"
            "ESCALATIONS_LOG_LEVEL=DEBUG\nESCALATIONS_POLL\n",
            [
                "{env}:2: not a setting: no '=' (expected NAME=value)",
                "{env}:5: not a setting: no '=' (expected NAME=value)",
            ],
        ),
        (
            "export ESCALATIONS_LOG_LEVEL=debug\n",
            [
                "{env}:1: ESCALATIONS_LOG_LEVEL: 'export' is shell syntax; systemd ignores the "
                "line (drop it)"
            ],
        ),
        (
            "ESCALATIONS_LOG-LEVEL=debug\n",
            [
                "{env}:1: not a setting: the name before '=' is not a valid variable name "
                "(letters, digits and _ only; systemd ignores the line)"
            ],
        ),
        (
            "\ufeffESCALATIONS_LOG_LEVEL=debug\n",
            ["{env}:1: the env file starts with a byte order mark (save it as UTF-8 without BOM)"],
        ),
        (
            "ESCALATIONS_HELPDESK_TOKEN=just-the-token\x00\n",
            ["{env}:1: holds a NUL character (systemd stops reading the file there)"],
        ),
    ],
    ids=[
        "no equals",
        "name only",
        "unterminated quote",
        "export, single quote",
        "two",
        "export",
        "invalid name",
        "byte order mark",
        "NUL",
    ],
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
        "# comment\n; comment\n\n   \n  ESCALATIONS_LOG_LEVEL = debug  \r\n"
        "ESCALATIONS_HELPDESK_URL='https://zammad.example.com'\n"
        'ESCALATIONS_HELPDESK_TOKEN="abc"\nESCALATIONS_DATABASE_URL=sqlite:///\\\n'
        f"{tmp_path}/db.sqlite3\n"
    )
    settings = load_settings(env)
    assert settings.log_level == "DEBUG"
    assert settings.helpdesk_url == "https://zammad.example.com"
    assert settings.helpdesk_token is not None
    assert settings.helpdesk_token.get_secret_value() == "abc"
    assert settings.database_path == tmp_path / "db.sqlite3"


def test_env_file_lines_systemd_skips_are_skipped_unless_they_look_like_settings(
    tmp_path: Path,
) -> None:
    env = tmp_path / "env"
    env.write_text(
        "just some text\nexport PATH=/usr/bin\nFOO-BAR=1\nESCALATIONS_POLL_INTERVAL_SECONDS=45\n"
    )
    assert load_settings(env).poll_interval_seconds == 45


def test_env_file_other_variables_are_ignored(tmp_path: Path) -> None:
    """systemd passes the whole file to the process: TZ, PATH and the like belong there."""
    env = tmp_path / "env"
    env.write_text(
        "TZ=UTC\nPATH=/usr/local/bin:/usr/bin\nLANG=C.UTF-8\nPYTHONUNBUFFERED=1\n"
        "ESCALATIONS_POLL_INTERVAL_SECONDS=45\nESCALATIONS_TEST_CRASH_AT=nowhere\n"
    )
    settings = load_settings(env)
    assert settings.poll_interval_seconds == 45


def test_env_file_every_typo_is_reported_with_line_and_suggestion(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_text(
        "ESCALATIONS_LOG_LEVL=DEBUG\nTZ=UTC\n# ESCALATIONS_NOPE=1\n"
        "ESCALATIONS_POLL_INTERVALL_SECONDS=45\nESCALATIONS_WHATEVER=1\n"
        "escalations_helpdesk_tokn=t\nESCALATIONS_POLL\n"
    )
    assert config_error(env).splitlines() == [
        f"{env}:1: ESCALATIONS_LOG_LEVL: unknown setting (did you mean ESCALATIONS_LOG_LEVEL?)",
        f"{env}:4: ESCALATIONS_POLL_INTERVALL_SECONDS: unknown setting (did you mean "
        "ESCALATIONS_POLL_INTERVAL_SECONDS?)",
        f"{env}:5: ESCALATIONS_WHATEVER: unknown setting",
        f"{env}:6: escalations_helpdesk_tokn: unknown setting (did you mean "
        "ESCALATIONS_HELPDESK_TOKEN?)",
        f"{env}:7: not a setting: no '=' (expected NAME=value)",
    ]


def test_env_file_a_typo_given_twice_is_reported_once_at_the_last_line(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_text("ESCALATIONS_LOG_LEVL=DEBUG\nESCALATIONS_LOG_LEVL=INFO\n")
    assert config_error(env) == (
        f"{env}:2: ESCALATIONS_LOG_LEVL: unknown setting (did you mean ESCALATIONS_LOG_LEVEL?)"
    )


def test_env_file_the_last_assignment_wins(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_text("ESCALATIONS_POLL_INTERVAL_SECONDS=45\nESCALATIONS_POLL_INTERVAL_SECONDS=50\n")
    assert load_settings(env).poll_interval_seconds == 50


def test_env_file_bad_values_name_file_line_and_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / "env"
    env.write_text(
        "# poll\nESCALATIONS_POLL_INTERVAL_SECONDS=soon\n"
        "ESCALATIONS_HELPDESK_URL=https://zammad.example.com # production\n"
        "ESCALATIONS_LOG_LEVL=DEBUG\n"
    )
    monkeypatch.setenv("ESCALATIONS_HTTP_READ_TIMEOUT", "0")
    assert config_error(env).splitlines() == [
        f"{env}:4: ESCALATIONS_LOG_LEVL: unknown setting (did you mean ESCALATIONS_LOG_LEVEL?)",
        f"{env}:3: ESCALATIONS_HELPDESK_URL: Value error, contains whitespace or control "
        "characters",
        f"{env}:2: ESCALATIONS_POLL_INTERVAL_SECONDS: Input should be a valid integer, unable "
        "to parse string as an integer",
        "ESCALATIONS_HTTP_READ_TIMEOUT: Input should be greater than 0",
    ]


def test_environment_wins_over_a_bad_value_in_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / "env"
    env.write_text("ESCALATIONS_POLL_INTERVAL_SECONDS=soon\n")
    monkeypatch.setenv("ESCALATIONS_POLL_INTERVAL_SECONDS", "12")
    assert load_settings(env).poll_interval_seconds == 12


def test_credential_wins_over_the_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "helpdesk-token").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    env = tmp_path / "env"
    env.write_text("ESCALATIONS_HELPDESK_TOKEN=from-file\n")
    token = load_settings(env).helpdesk_token
    assert token is not None
    assert token.get_secret_value() == "from-credential"


def test_every_unknown_variable_in_the_environment_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ESCALATIONS_LOGLEVEL", "DEBUG")
    monkeypatch.setenv("ESCALATIONS_POLL_INTERVAL", "30")
    monkeypatch.setenv("ESCALATIONS_ZZZ", "1")
    monkeypatch.setenv("ESCALATIONS_TEST_CRASH_AT", "nowhere")  # a test hook, not a typo
    env = tmp_path / "env"
    env.write_text("ESCALATIONS_LOG_LEVL=DEBUG\n")
    assert config_error(env).splitlines() == [
        f"{env}:1: ESCALATIONS_LOG_LEVL: unknown setting (did you mean ESCALATIONS_LOG_LEVEL?)",
        "environment: ESCALATIONS_LOGLEVEL: unknown setting (did you mean ESCALATIONS_LOG_LEVEL?)",
        "environment: ESCALATIONS_POLL_INTERVAL: unknown setting (did you mean "
        "ESCALATIONS_POLL_INTERVAL_SECONDS?)",
        "environment: ESCALATIONS_ZZZ: unknown setting",
    ]


def test_an_unknown_override_is_an_unknown_setting() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(log_levl="DEBUG")
    assert str(err.value) == (
        "ESCALATIONS_LOG_LEVL: unknown setting (did you mean ESCALATIONS_LOG_LEVEL?)"
    )


def test_settings_no_longer_read_a_dotenv_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``.env`` in the working directory is not ours: only ``--env-file`` is read."""
    (tmp_path / ".env").write_text("ESCALATIONS_POLL_INTERVAL_SECONDS=45\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().poll_interval_seconds == 30
    assert Settings(_env_file=None).poll_interval_seconds == 30


def test_no_error_shows_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic's own text (``input_value=...``) is never printed; only its message."""
    witness = "witness-S3cr3t value"
    for name in Settings.model_fields:
        monkeypatch.setenv(ENV_PREFIX + name.upper(), witness)
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", "https://bot:witness-S3cr3t@zammad.example")
    message = config_error()
    assert "witness-S3cr3t" not in message
    assert "ESCALATIONS_POLL_INTERVAL_SECONDS: Input should be a valid integer" in message


def test_log_format(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().log_format == "text"
    monkeypatch.setenv("ESCALATIONS_LOG_FORMAT", "json")
    assert load_settings().log_format == "json"
    monkeypatch.setenv("ESCALATIONS_LOG_FORMAT", "xml")
    assert config_error() == "ESCALATIONS_LOG_FORMAT: Input should be 'text' or 'json'"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://bot:hunter2-pw@zammad.example.com", "https://***@zammad.example.com"),
        ("https://hunter2-pw@zammad.example.com/", "https://***@zammad.example.com"),
        (
            "https://bot:hunter2-pw@zammad.example.com:8443/z",
            "https://***@zammad.example.com:8443/z",
        ),
        ("http://bot:hunter2-pw@127.0.0.1:8765", "http://***@127.0.0.1:8765"),
        ("https://bot:hunter2-pw@zammad.example.com:port", "https://***@zammad.example.com:port"),
    ],
)
def test_helpdesk_url_with_credentials_is_refused_without_showing_them(
    monkeypatch: pytest.MonkeyPatch, url: str, shown: str
) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", url)
    message = config_error()
    assert message == (
        f"ESCALATIONS_HELPDESK_URL: Value error, must not hold a user name or password ({shown}); "
        "put the token in ESCALATIONS_HELPDESK_TOKEN or the helpdesk-token credential"
    )
    assert "hunter2" not in message


def test_helpdesk_url_with_an_at_sign_in_the_path_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", "https://zammad.example.com/team@x")
    assert load_settings().helpdesk_url == "https://zammad.example.com/team@x"


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


def test_an_empty_path_setting_means_its_default(tmp_path: Path) -> None:
    # an uncommented `#ESCALATIONS_STATE_DIR=` of settings.example.env, without a value, was
    # Path("") == Path("."): the store and archive in the directory the worker started in
    env = tmp_path / "settings.env"
    names = ("STATE_DIR", "MAPPINGS_DIR", "ARCHIVE_DIR", "REPORTS_DIR", "ARCHIVE_FONT_DIR")
    env.write_text(
        "".join(f"{ENV_PREFIX}{name}=\n" for name in names) + f"{ENV_PREFIX}CA_BUNDLE= \n"
    )
    settings = load_settings(env)
    defaults = load_settings(None)
    assert settings.state_dir == defaults.state_dir == tmp_path / "state"
    assert settings.mappings_dir == defaults.mappings_dir
    assert settings.archive_font_dir == defaults.archive_font_dir
    assert settings.archive_dir is None
    assert settings.reports_dir is None
    assert settings.ca_bundle is None
    assert settings.archive_path == tmp_path / "state" / "archive"
