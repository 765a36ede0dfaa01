"""``escalations diagnostics``: everything a bug report needs, with every secret masked.

One bundle an admin can paste into a ticket: versions (this package, Python, the libraries,
SQLite), where it runs (systemd's variables present or not, never their values' secrets),
every setting (the token and any credential in a URL masked), the mapping files with their
SHA-256, the store (schema, counts by state, integrity) and its lock, and the last errors.
Each section is gathered on its own: a broken setting or a missing store is reported in the
bundle, not as a failure of the command (it exits 0 whenever the bundle was written).

Nothing here talks to the helpdesk.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sqlite3
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from connector.redaction import SECRETS
from escalations.app.version import package_version
from escalations.clock import SystemClock
from escalations.errors import EscalationsError
from escalations.settings import Settings, load_settings

SCHEMA = "helpdesk-escalations/diagnostics"
VERSION = 1
LIBRARIES = (
    "requests",
    "urllib3",
    "tenacity",
    "pydantic",
    "pydantic-settings",
    "schedule",
    "nh3",
    "fpdf2",
    "psycopg",
    "psycopg-binary",
    "PyMySQL",
)
SYSTEMD_VARIABLES = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "JOURNAL_STREAM",
    "INVOCATION_ID",
    "STATE_DIRECTORY",
    "CONFIGURATION_DIRECTORY",
    "CREDENTIALS_DIRECTORY",
)
MASK = "**********"
LAST_ERRORS = 10

Section = dict[str, Any]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> Section:
    return {
        "helpdesk-escalations": package_version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "libraries": {name: _version(name) for name in LIBRARIES},
    }


def environment(environ: dict[str, str]) -> Section:
    """Which of systemd's variables are set (values only for the harmless ones)."""
    shown: Section = {}
    for name in SYSTEMD_VARIABLES:
        value = environ.get(name)
        if value is None:
            shown[name] = None
        elif name in ("WATCHDOG_USEC", "STATE_DIRECTORY", "CONFIGURATION_DIRECTORY"):
            shown[name] = value
        else:
            shown[name] = "set"
    credential = Path(environ.get("CREDENTIALS_DIRECTORY", "/nonexistent")) / "helpdesk-token"
    shown["helpdesk-token credential"] = "present" if credential.is_file() else "absent"
    return shown


def mask_url(url: str) -> str:
    """The URL without a user name or password in it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def settings_section(settings: Settings) -> Section:
    shown: Section = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name == "helpdesk_token":
            shown[name] = None if value is None else MASK
        elif isinstance(value, str) and "://" in value:
            shown[name] = mask_url(value)
        elif isinstance(value, Path):
            shown[name] = str(value)
        else:
            shown[name] = value
    return shown


def mappings_section(settings: Settings) -> Section:
    from escalations.mappings import load_mappings

    directory = Path(settings.mappings_dir)
    files = {}
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if path.is_file():
                data = path.read_bytes()
                files[path.name] = {
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "bytes": len(data),
                }
    try:
        load_mappings(directory)
        valid: str = "ok"
    except EscalationsError as exc:
        valid = str(exc)
    return {"directory": str(directory), "files": files, "check": valid}


def store_section(settings: Settings) -> Section:
    from escalations.models import EffectState
    from escalations.store.base import Store
    from escalations.store.sqlite import SqliteStore, probe_lock

    clock = SystemClock()
    store: Store
    if settings.database_is_postgresql:  # the URL without its password; nothing is created
        from escalations.app.preflight import probe_postgres
        from escalations.app.wiring import open_configured_store
        from escalations.store.postgres import redacted_url

        url = redacted_url(settings.database_url)
        if probe_postgres(settings) is None:
            return {"url": url, "exists": False}
        section: Section = {"url": url, "exists": True, "engine": "postgresql"}
        store = open_configured_store(settings, clock)
    else:
        path = settings.database_path
        if not path.exists():
            return {"path": str(path), "exists": False}
        section = {"path": str(path), "exists": True, "bytes": path.stat().st_size}
        section["lock"] = probe_lock(path) or "free"
        store = SqliteStore(path, clock)
    try:
        summary = store.status(clock.now())
        section["schema"] = summary.schema_version
        section["integrity"] = store.integrity_check()
        section["open_escalations"] = {
            f"level {level} {state}": n for (state, level), n in sorted(summary.escalations.items())
        }
        section["effects"] = {s.value: summary.effects.get(s, 0) for s in EffectState}
        last = summary.last_successful_poll
        section["last_successful_poll"] = last.isoformat() if last else None
        section["last_errors"] = [
            f"{run.started_at.isoformat()} {run.job}: {run.error}"
            for run in summary.last_errors[-LAST_ERRORS:]
        ]
        section["failed_effects"] = [
            f"{e.id} {e.kind} {e.key}: {e.last_error}"
            for e in store.effects(EffectState.FAILED)[-LAST_ERRORS:]
        ]
    finally:
        store.close()
    return section


def _guarded(gather: Callable[[], Section]) -> Section:
    """A section, or what stopped it from being gathered."""
    try:
        return gather()
    except (EscalationsError, OSError, sqlite3.Error) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def bundle(env_file: Path | None, environ: dict[str, str]) -> Section:
    """The whole bundle as one JSON-ready dict, secrets masked."""
    result: Section = {"schema": SCHEMA, "version": VERSION, "versions": versions()}
    result["environment"] = environment(environ)
    try:
        settings: Settings | None = load_settings(env_file)
    except EscalationsError as exc:
        settings = None
        result["settings"] = {"error": str(exc)}
    if settings is not None:
        if settings.helpdesk_token is not None:
            SECRETS.add(settings.helpdesk_token.get_secret_value())
        result["settings"] = settings_section(settings)
        result["mappings"] = _guarded(lambda: mappings_section(settings))
        result["store"] = _guarded(lambda: store_section(settings))
    redacted = SECRETS.redact(json.dumps(result, default=str))
    loaded: Section = json.loads(redacted)
    return loaded


def render_text(data: Section) -> list[str]:
    """The bundle as indented ``key: value`` lines, one section after another."""
    lines = [f"# helpdesk-escalations diagnostics ({data['schema']} v{data['version']})"]

    def walk(value: Any, indent: int) -> None:
        pad = "  " * indent
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, dict | list) and item:
                    lines.append(f"{pad}{key}:")
                    walk(item, indent + 1)
                else:
                    lines.append(f"{pad}{key}: {_scalar(item)}")
        elif isinstance(value, list):
            for item in value:
                lines.append(f"{pad}- {_scalar(item)}")

    for section in ("versions", "environment", "settings", "mappings", "store"):
        if section in data:
            lines.append("")
            lines.append(f"## {section}")
            walk(data[section], 0)
    return lines


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
