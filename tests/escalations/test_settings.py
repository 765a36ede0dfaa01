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
