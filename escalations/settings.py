"""Worker settings: environment variables with the prefix ``ESCALATIONS_``, optionally from an
env file in systemd ``EnvironmentFile=`` syntax, and the helpdesk token from systemd credentials.

Every field is documented, with its default, in ``settings.example.env`` (a test checks it).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from escalations.envfile import (
    Assignment,
    EnvFileError,
    IgnoredLine,
    is_variable_name,
    parse_env_file,
)
from escalations.errors import ConfigError

ENV_PREFIX = "ESCALATIONS_"
CREDENTIAL_NAME = "helpdesk-token"
WEBHOOK_CREDENTIAL_NAME = "webhook-secret"
DB_PASSWORD_CREDENTIAL_NAME = "helpdesk-db-password"  # noqa: S105 - a file name
ADMIN_CREDENTIAL_NAME = "helpdesk-admin-token"
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


def _path_default(field_name: str) -> Path | None:
    """The default of a path setting, for an empty value."""
    field = Settings.model_fields[field_name]
    if field.default_factory is not None:
        made: Path = field.default_factory()  # type: ignore[call-arg]
        return made
    default: Path | None = field.default
    return default


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        env_file_encoding="utf-8",
        validate_default=True,
    )

    helpdesk: Literal["zammad", "osticket"] = "zammad"
    helpdesk_url: str = ""
    helpdesk_token: SecretStr | None = None
    helpdesk_admin_token: SecretStr | None = None
    helpdesk_db_host: str = "127.0.0.1"
    helpdesk_db_port: int = Field(default=3306, ge=1, le=65535)
    helpdesk_db_name: str = "osticket"
    helpdesk_db_user: str = ""
    helpdesk_db_password: SecretStr | None = None
    helpdesk_db_table_prefix: str = Field(default="ost_", pattern=r"^[A-Za-z0-9_]*$")
    state_dir: Path = Field(default_factory=default_state_dir)
    database_url: str = ""
    leader_lease_min_seconds: int = Field(default=60, ge=1, le=3600)
    """The shortest leadership lease a job's leader takes (it holds three of the job's
    intervals, at least this long): how long a standby waits after a leader died."""
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
    https_proxy: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    webhook_listen: str = ""
    webhook_secret: SecretStr | None = None
    webhook_path: str = "/zammad/webhook"
    webhook_max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)

    @field_validator(
        "state_dir",
        "mappings_dir",
        "archive_dir",
        "reports_dir",
        "archive_font_dir",
        "ca_bundle",
        mode="before",
    )
    @classmethod
    def _empty_path_is_the_default(cls, value: Any, info: ValidationInfo) -> Any:
        # `ESCALATIONS_STATE_DIR=` (a commented line of settings.example.env uncommented
        # without a value) would otherwise be Path("") == Path("."): the store in whatever
        # directory the worker was started from (/ under systemd)
        if isinstance(value, str) and not value.strip() and info.field_name:
            return _path_default(info.field_name)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("helpdesk_token", "helpdesk_admin_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        token = value.get_secret_value().strip()
        if any(ch.isspace() or not ch.isprintable() for ch in token):
            # e.g. a Windows line ending inside an env file: it would end up in an error
            # message from the HTTP library, with the token around it
            raise ValueError("contains whitespace or control characters")
        return SecretStr(token)

    @field_validator("webhook_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return ""
        return listen_address(value)

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # empty, as in settings.example.env: no secret
        secret = value.get_secret_value().strip()
        if any(not ch.isprintable() for ch in secret):
            raise ValueError("contains control characters")
        return SecretStr(secret)

    @field_validator("webhook_path")
    @classmethod
    def _webhook_path(cls, value: str) -> str:
        if not value.startswith("/") or any(
            ch.isspace() or not ch.isprintable() or ch in "?#" for ch in value
        ):
            raise ValueError("must be a URL path starting with / (no spaces, no ? or #)")
        return value

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
    def database_is_postgresql(self) -> bool:
        """``ESCALATIONS_DATABASE_URL`` names a PostgreSQL store (``postgresql://…``)."""
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def database_path(self) -> Path:
        url = self.database_url or f"sqlite:///{self.state_dir / 'escalations.sqlite3'}"
        if self.database_is_postgresql:
            raise ConfigError(
                "ESCALATIONS_DATABASE_URL: this command runs on a SQLite store only so far; "
                "on PostgreSQL use run, check, status, effects, archive and report "
                "(docs/postgresql.md)"
            )
        if not url.startswith("sqlite:///"):
            raise ConfigError(
                f"ESCALATIONS_DATABASE_URL: unsupported database '{url.split(':')[0]}' "
                "(this version supports sqlite:///PATH and postgresql://…)"
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


def listen_address(value: str) -> str:
    """``value`` checked and written one way (``127.0.0.1:8766``, ``[::1]:8766``; ``""``
    stays off); see ``parse_listen_address``."""
    if not value.strip():
        return ""
    host, port = parse_listen_address(value)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_listen_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) → ``(host, port)``. The host is an IP literal or
    ``localhost`` (taken as ``127.0.0.1``), never a name to resolve; the port is 1–65535.

    Raises:
        ValueError: what is wrong, without the value.
    """
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8766 or [::1]:8766")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("an IPv6 address goes in brackets: [::1]:8766")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("the port must be a number from 1 to 65535")
    if host.lower() == "localhost":
        return "127.0.0.1", int(port)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError("the host must be an IP address or localhost") from None
    return str(address), int(port)


def _check_url(url: str) -> None:
    """Refuse a URL the HTTP library would only refuse at the first request (every pass)."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ValueError("contains whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    _refuse_credentials(parts)
    try:
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


def _refuse_credentials(parts: SplitResult) -> None:
    """A user name or password in the URL would be sent to the helpdesk and printed wherever
    the URL is (``check``'s "ok" line, diagnostics, logs): refuse it without showing it."""
    _, at, host = parts.netloc.rpartition("@")
    if not at:
        return
    masked = f"{parts.scheme}://***@{host}{parts.path}"
    raise ValueError(
        f"must not hold a user name or password ({masked}); put the token in "
        f"{ENV_PREFIX}HELPDESK_TOKEN or the {CREDENTIAL_NAME} credential"
    )


def _known_names() -> frozenset[str]:
    return frozenset(ENV_PREFIX + name.upper() for name in Settings.model_fields)


def _is_ours(name: str) -> bool:
    return name.upper().startswith(ENV_PREFIX)


def _unknown_setting(name: str) -> str:
    """``NAME: unknown setting``, with the closest known name when one is close. The prefix is
    left out of the comparison: every name shares it, which would make all of them close."""
    stems = {known.removeprefix(ENV_PREFIX): known for known in _known_names()}
    close = difflib.get_close_matches(name.upper().removeprefix(ENV_PREFIX), sorted(stems), n=1)
    hint = f" (did you mean {stems[close[0]]}?)" if close else ""
    return f"{name}: unknown setting{hint}"


def _unknown_in_environment(environ: Iterable[str]) -> list[str]:
    """One line per ``ESCALATIONS_*`` variable in the environment that is not a setting."""
    allowed = _known_names() | NON_SETTING_VARIABLES
    return [
        f"environment: {_unknown_setting(name)}"
        for name in sorted(environ)
        if _is_ours(name) and name.upper() not in allowed
    ]


def load_settings(env_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings, turning every problem into one ``ConfigError`` line each.

    Precedence, highest first: ``overrides``, the credentials (``helpdesk-token``,
    ``webhook-secret``), the process environment, the env file, the defaults. Only the file's
    ``ESCALATIONS_*`` variables are settings; it may hold others (``TZ=UTC``), which are left
    alone, as systemd passes them on to the process.
    """
    file_values: dict[str, Assignment] = {}
    problems: list[str] = []
    if env_file is not None:
        file_values, problems = _read_env_file(env_file)
    problems += _unknown_in_environment(os.environ)
    token = _credential_token()
    if token is not None and "helpdesk_token" not in overrides:
        overrides["helpdesk_token"] = token
    admin = _credential_token(ADMIN_CREDENTIAL_NAME)
    if admin is not None and "helpdesk_admin_token" not in overrides:
        overrides["helpdesk_admin_token"] = admin
    db_password = _credential_token(DB_PASSWORD_CREDENTIAL_NAME)
    if db_password is not None and "helpdesk_db_password" not in overrides:
        overrides["helpdesk_db_password"] = db_password
    secret = _credential_token(WEBHOOK_CREDENTIAL_NAME)
    if secret is not None and "webhook_secret" not in overrides:
        overrides["webhook_secret"] = secret
    origins = _file_settings_in_effect(env_file, file_values, os.environ, overrides)
    values: dict[str, Any] = {field: file_values[field].value for field in origins}
    try:
        settings = Settings(**values, **overrides)
    except ValidationError as exc:
        invalid = [_validation_problem(err, origins) for err in exc.errors()]
        raise ConfigError("\n".join(problems + invalid)) from None
    if problems:
        raise ConfigError("\n".join(problems))
    _check_directories(settings)
    return settings


def _file_settings_in_effect(
    env_file: Path | None,
    file_values: Mapping[str, Assignment],
    environ: Iterable[str],
    overrides: Mapping[str, Any],
) -> dict[str, str]:
    """``field → FILE:LINE`` for the file's settings that nothing above the file sets. They
    go to ``Settings`` as init values, which pydantic-settings ranks above the environment,
    so those the environment sets are left out."""
    in_environment = {name.upper() for name in environ}
    return {
        field: f"{env_file}:{assignment.line}"
        for field, assignment in file_values.items()
        if ENV_PREFIX + field.upper() not in in_environment and field not in overrides
    }


def _validation_problem(err: ErrorDetails, origins: Mapping[str, str]) -> str:
    """``[FILE:LINE: ]NAME: message`` for one pydantic error, never showing the value."""
    field = str(err["loc"][0]) if err["loc"] else ""
    name = ENV_PREFIX + field.upper()
    where = f"{origins[field]}: " if field in origins else ""
    if err["type"] == "extra_forbidden":
        return where + _unknown_setting(name)
    message = err["msg"]
    value = err.get("input")
    if isinstance(value, str) and len(value) >= 4 and value in message:
        message = message.replace(value, "***")  # none of ours does; a library's might
    return f"{where}{name}: {message}"


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


def _read_env_file(path: Path) -> tuple[dict[str, Assignment], list[str]]:
    """The file's settings (``field → assignment``) and one line per problem in it, in file
    order. Its other variables are not ours and pass silently, as do the lines systemd skips
    unless they look like a setting: that setting would silently keep its default. No line's
    text is shown (it may hold the token), only names that are valid variable names."""
    if not path.is_file():
        raise ConfigError(f"{path}: env file not found")
    try:
        parsed = parse_env_file(_read_text(path, "env file"))
    except EnvFileError as exc:
        name = f"{exc.name}: " if exc.name else ""
        raise ConfigError(f"{path}:{exc.line}: {name}{exc.reason}") from None
    known = _known_names()
    found: dict[str, Assignment] = {}
    problems = [(i.line, _ignored_problem(path, i)) for i in parsed.ignored if _looks_ours(i)]
    for assignment in sorted(parsed.variables().values(), key=lambda a: a.line):
        name = assignment.name.upper()
        if not _is_ours(name) or name in NON_SETTING_VARIABLES:
            continue
        if name in known:
            found[name.removeprefix(ENV_PREFIX).lower()] = assignment
        else:
            where = f"{path}:{assignment.line}"
            problems.append((assignment.line, f"{where}: {_unknown_setting(assignment.name)}"))
    return found, [problem for _, problem in sorted(problems)]


def _looks_ours(ignored: IgnoredLine) -> bool:
    """A skipped line meant as one of our settings: it starts with the prefix, perhaps after
    the shell's ``export`` or a byte order mark, the usual ways to spoil a name."""
    return _is_ours(_without_export(ignored.text.lstrip("\ufeff")))


def _without_export(text: str) -> str:
    return re.sub(r"^export[ \t]+", "", text)


def _ignored_problem(path: Path, ignored: IgnoredLine) -> str:
    """The line for a skipped line that looks like a setting (see ``_looks_ours``)."""
    where = f"{path}:{ignored.line}"
    if ignored.reason == "no '='":
        return f"{where}: not a setting: no '=' (expected NAME=value)"
    if ignored.text.startswith("\ufeff"):
        return f"{where}: the env file starts with a byte order mark (save it as UTF-8 without BOM)"
    name = _without_export(ignored.text)
    if name != ignored.text and is_variable_name(name):
        return f"{where}: {name}: 'export' is shell syntax; systemd ignores the line (drop it)"
    return (
        f"{where}: not a setting: the name before '=' is not a valid variable name "
        "(letters, digits and _ only; systemd ignores the line)"
    )


def _check_directories(settings: Settings) -> None:
    """The store, archive and reports must be creatable: nothing on their way may be a
    regular file (``ESCALATIONS_STATE_DIR=/etc/passwd/x``)."""
    store = "ESCALATIONS_DATABASE_URL" if settings.database_url else "ESCALATIONS_STATE_DIR"
    database = None
    if not settings.database_is_postgresql:  # a server's database has no directory here
        database = settings.database_path  # also refuses an unsupported database URL
        if _kind(database) == "directory":
            raise ConfigError(f"{store}: {database} is a directory, not a database file")
    state = "ESCALATIONS_STATE_DIR"
    wanted = [
        *([(store, database.parent)] if database is not None else []),
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


def _credential_token(name: str = CREDENTIAL_NAME) -> SecretStr | None:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / name
    if not path.is_file():
        return None
    # no line number: it would say where in the token the bad byte is
    return SecretStr(_read_text(path, "credential", show_line=False).strip())
