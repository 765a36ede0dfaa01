"""Worker settings: environment variables with the prefix ``ESCALATIONS_``, optionally from an
env file in systemd ``EnvironmentFile=`` syntax, and the helpdesk token from systemd credentials.

Every field is documented, with its default, in ``settings.example.env`` (a test checks it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from escalations.errors import ConfigError

ENV_PREFIX = "ESCALATIONS_"
CREDENTIAL_NAME = "helpdesk-token"
# Variables with our prefix that are not settings: test-only hooks and knobs.
NON_SETTING_VARIABLES = frozenset(
    {"ESCALATIONS_TEST_CRASH_AT", "ESCALATIONS_MODEL_EXAMPLES", "ESCALATIONS_MODEL_STEPS"}
)


def default_state_dir() -> Path:
    """systemd's ``StateDirectory=`` if set, else the XDG state directory."""
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "helpdesk-escalations"


def shipped_mappings_dir() -> Path:
    """The ``mappings/`` directory that ships with the package (next to ``escalations/``)."""
    return Path(__file__).resolve().parent.parent / "mappings"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        env_file_encoding="utf-8",
        validate_default=True,
    )

    helpdesk: Literal["zammad"] = "zammad"
    helpdesk_url: str = ""
    helpdesk_token: SecretStr | None = None
    state_dir: Path = Field(default_factory=default_state_dir)
    database_url: str = ""
    mappings_dir: Path = Field(default_factory=shipped_mappings_dir)
    archive_dir: Path | None = None
    reports_dir: Path | None = None
    poll_interval_seconds: int = Field(default=30, ge=1, le=3600)
    poll_overlap_seconds: int = Field(default=120, ge=0, le=86400)
    http_connect_timeout: float = Field(default=5.0, gt=0, le=120)
    http_read_timeout: float = Field(default=30.0, gt=0, le=600)
    http_requests_per_minute: int = Field(default=60, ge=1, le=6000)
    http_max_attempts: int = Field(default=5, ge=1, le=20)
    write_settle_seconds: int = Field(default=300, ge=0, le=3600)
    ca_bundle: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("helpdesk_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value().strip()
        if any(ch.isspace() or not ch.isprintable() for ch in token):
            # e.g. a Windows line ending inside an env file: it would end up in an error
            # message from the HTTP library, with the token around it
            raise ValueError("contains whitespace or control characters")
        return SecretStr(token)

    @field_validator("helpdesk_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (http:// only for a loopback address)")
        return value

    @property
    def database_path(self) -> Path:
        url = self.database_url or f"sqlite:///{self.state_dir / 'escalations.sqlite3'}"
        if not url.startswith("sqlite:///"):
            raise ConfigError(
                f"ESCALATIONS_DATABASE_URL: unsupported database '{url.split(':')[0]}' "
                "(this version supports sqlite:///PATH)"
            )
        return Path(url.removeprefix("sqlite:///"))

    @property
    def archive_path(self) -> Path:
        return self.archive_dir or self.state_dir / "archive"

    @property
    def reports_path(self) -> Path:
        return self.reports_dir or self.state_dir / "reports"

    @property
    def helpdesk_configured(self) -> bool:
        return bool(self.helpdesk_url)


def _unknown_prefixed_variables(environ: dict[str, str]) -> list[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(
        k
        for k in environ
        if k.upper().startswith(ENV_PREFIX) and k.upper() not in known | NON_SETTING_VARIABLES
    )


def load_settings(env_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings, turning every problem into one ``ConfigError`` line per field."""
    if env_file is not None and not env_file.is_file():
        raise ConfigError(f"{env_file}: env file not found")
    unknown = _unknown_prefixed_variables(dict(os.environ))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]} in the environment (typo?)")
    token = _credential_token()
    if token is not None and "helpdesk_token" not in overrides:
        overrides["helpdesk_token"] = token
    try:
        settings = Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ENV_PREFIX + "_".join(str(p) for p in err["loc"]).upper()
            where = f"{env_file}: " if env_file else ""
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = "unknown setting (typo?)"
            lines.append(f"{where}{name}: {message}")
        raise ConfigError("\n".join(lines)) from None
    settings.database_path  # noqa: B018 - validates the URL scheme early
    return settings


def _credential_token() -> SecretStr | None:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / CREDENTIAL_NAME
    if not path.is_file():
        return None
    return SecretStr(path.read_text(encoding="utf-8").strip())
