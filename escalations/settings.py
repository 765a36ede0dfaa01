"""Worker settings: environment variables with the prefix ``ESCALATIONS_``, optionally from an
env file in systemd ``EnvironmentFile=`` syntax, and the helpdesk token from systemd credentials.

Every field is documented, with its default, in ``settings.example.env`` (a test checks it).
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv.parser import parse_stream
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
    comms_interval_seconds: int = Field(default=300, ge=10, le=86400)
    archive_interval_seconds: int = Field(default=300, ge=10, le=86400)
    archive_font_dir: Path = Path("/usr/share/fonts/truetype/dejavu")
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
        if value:
            _check_url(value)
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


def _check_url(url: str) -> None:
    """Refuse a URL the HTTP library would only refuse at the first request (every pass)."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ValueError("contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what raises for 99999 or "abc"
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    host = parts.hostname
    if not host:
        raise ValueError("has no host name")
    if ":" in host:  # a bracketed IPv6 literal; urlsplit has checked the brackets
        if not all(ch in "0123456789abcdefABCDEF:." for ch in host):
            raise ValueError(f"host {host!r} is not an IPv6 address")
    elif not all(ch.isalnum() or ch in "-._" for ch in host) or ".." in host:
        raise ValueError(f"host {host!r} is not a host name (no spaces or punctuation)")


def _unknown_prefixed_variables(environ: dict[str, str]) -> list[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(
        k
        for k in environ
        if k.upper().startswith(ENV_PREFIX) and k.upper() not in known | NON_SETTING_VARIABLES
    )


def load_settings(env_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings, turning every problem into one ``ConfigError`` line per field."""
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigError(f"{env_file}: env file not found")
        _check_env_file(env_file)
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
    _check_directories(settings)
    return settings


def _read_text(path: Path, what: str, *, show_line: bool = True) -> str:
    """The file as UTF-8 text, or a ``ConfigError`` naming it (and the line of the first
    byte that is not UTF-8, unless the file is a secret)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        where = f"{path}:{line}" if show_line else str(path)
        raise ConfigError(f"{where}: the {what} is not UTF-8 text (save it as UTF-8)") from None


def _check_env_file(path: Path) -> None:
    """Every line of the env file must be a setting, a comment or blank. The reader behind
    pydantic-settings skips a line it cannot parse (with a warning at best), so a setting
    with an unterminated quote would silently keep its default. The line itself is not
    shown: it may hold the token."""
    text = _read_text(path, "env file")
    problems: list[str] = []
    for binding in parse_stream(io.StringIO(text)):
        where = f"{path}:{binding.original.line}"
        first = binding.original.string.splitlines()[0] if binding.original.string else ""
        if binding.error and "=" in first:
            name = first.split("=", 1)[0].strip().removeprefix("export").strip()
            problems.append(f"{where}: {name}: cannot parse the value (unterminated quote?)")
        elif binding.error or (binding.key is not None and binding.value is None):
            problems.append(f"{where}: not a setting: no '=' (expected NAME=value)")
    if problems:
        raise ConfigError("\n".join(problems))


def _check_directories(settings: Settings) -> None:
    """The store, archive and reports must be creatable: nothing on their way may be a
    regular file (``ESCALATIONS_STATE_DIR=/etc/passwd/x``)."""
    database = settings.database_path  # also refuses an unsupported database URL
    store = "ESCALATIONS_DATABASE_URL" if settings.database_url else "ESCALATIONS_STATE_DIR"
    if _kind(database) == "directory":
        raise ConfigError(f"{store}: {database} is a directory, not a database file")
    state = "ESCALATIONS_STATE_DIR"
    wanted = [
        (store, database.parent),
        ("ESCALATIONS_ARCHIVE_DIR" if settings.archive_dir else state, settings.archive_path),
        ("ESCALATIONS_REPORTS_DIR" if settings.reports_dir else state, settings.reports_path),
    ]
    for setting, directory in wanted:
        for path in (directory, *directory.parents):
            kind = _kind(path)
            if kind == "file":
                blocked = "" if path == directory else f" cannot be created: {path}"
                raise ConfigError(f"{setting}: {directory}{blocked} is a file, not a directory")
            if kind != "missing":
                break  # a directory (or unreadable: the store reports that when it opens)


def _kind(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except NotADirectoryError:
        return "missing"  # a parent is a file: found when that parent is looked at
    except OSError:
        return "unknown"
    return "directory" if stat.S_ISDIR(mode) else "file"


def _credential_token() -> SecretStr | None:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / CREDENTIAL_NAME
    if not path.is_file():
        return None
    # no line number: it would say where in the token the bad byte is
    return SecretStr(_read_text(path, "credential", show_line=False).strip())
