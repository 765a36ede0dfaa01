"""``escalations provision`` end to end: the command, through the admin client production
uses, against the sandbox's admin API (Zammad's semantics: staged attributes and migrations,
``data_option`` filled in with defaults, macros' ``perform`` validated)."""

from __future__ import annotations

import argparse
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from escalations.app.cli import main
from escalations.app.provision import provision
from escalations.carrier import html_to_text, parse_carrier_note
from escalations.clock import FakeClock
from escalations.errors import ConfigError
from escalations.mappings import load_mappings
from escalations.settings import Settings, load_settings, shipped_mappings_dir
from sandbox import ZammadSandbox, mount
from sandbox.seed import load_seed

BASE = "https://zammad.test"
ADMIN = "fresh-admin-token"
BOT = "fresh-bot-token"
WRITES = ("POST", "PUT", "DELETE", "PATCH")

FRESH_ZAMMAD: dict[str, Any] = {
    "groups": [{"name": "Users"}],
    "users": [
        {
            "login": "admin@isp.example",
            "firstname": "Ada",
            "lastname": "Admin",
            "roles": ["Admin", "Agent"],
            "groups": {"Users": ["full"]},
            "tokens": [{"name": "provision", "permissions": ["admin"], "token": ADMIN}],
        },
        {
            "login": "escalation-bot",
            "firstname": "Escalation",
            "lastname": "Bot",
            "roles": ["Agent"],
            "groups": {"Users": ["full"]},
            "tokens": [{"name": "worker", "permissions": ["ticket.agent"], "token": BOT}],
        },
    ],
}
"""A Zammad as installed: no escalation attributes, no parked state, no escalation group."""


CLOCK = FakeClock(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
"""Shared by the sandbox and the admin client: the request budget's waits pass at once."""


@pytest.fixture
def zammad() -> Iterator[ZammadSandbox]:
    sandbox = ZammadSandbox(CLOCK)
    load_seed(sandbox, FRESH_ZAMMAD)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mount(sandbox, rsps, BASE)
        yield sandbox


@pytest.fixture
def mappings_dir(tmp_path: Path) -> Path:
    target = tmp_path / "mappings"
    shutil.copytree(shipped_mappings_dir(), target)
    return target


def settings_for(tmp_path: Path, mappings_dir: Path, **more: Any) -> Settings:
    values: dict[str, Any] = {
        "helpdesk_url": BASE,
        "helpdesk_token": BOT,
        "helpdesk_admin_token": ADMIN,
        "state_dir": tmp_path / "state",
        "mappings_dir": mappings_dir,
    }
    return load_settings(**{**values, **more})


def run(settings: Settings, **flags: Any) -> int:
    args = argparse.Namespace(
        dry_run=flags.get("dry_run", False),
        force=flags.get("force", False),
        webhook_url=flags.get("webhook_url"),
    )
    return provision(args, settings, clock=CLOCK)


def writes(sandbox: ZammadSandbox) -> list[tuple[str, str, int]]:
    return [r for r in sandbox.requests if r[0] in WRITES]


def admin_get(path: str) -> Any:
    answer = requests.get(
        f"{BASE}/api/v1{path}", headers={"Authorization": f"Token token={ADMIN}"}, timeout=5
    )
    answer.raise_for_status()
    return answer.json()


def admin_put(path: str, body: dict[str, Any]) -> None:
    answer = requests.put(
        f"{BASE}/api/v1{path}",
        json=body,
        headers={"Authorization": f"Token token={ADMIN}"},
        timeout=5,
    )
    answer.raise_for_status()


def names(path: str) -> set[str]:
    return {str(row["name"]) for row in admin_get(path)}


def summary_line(out: str) -> str:
    return out.strip().splitlines()[-1]


def test_a_fresh_zammad_gets_everything_agents_click(
    zammad: ZammadSandbox, tmp_path: Path, mappings_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings_for(tmp_path, mappings_dir)) == 0
    out = capsys.readouterr().out

    attributes = {a["name"]: a for a in admin_get("/object_manager_attributes")}
    for name in ("escalation_requested", "escalation_level", "escalation_reason"):
        assert name in attributes, name
        assert not attributes[name]["to_migrate"], f"{name}: migrations not run"
    level = attributes["escalation_level"]["data_option"]["options"]
    assert set(level) == {"1", "2", "3", "4"}
    assert "parked" in names("/ticket_states")
    assert "Escalations" in names("/groups")
    macros = names("/macros")
    assert {
        "Escalate",
        "Escalation: level 2",
        "Escalation: level 4",
        "Escalation: customer confirmed",
    } <= macros
    assert {"Open escalations by level", "Parked escalations", "Confirmation calls due"} <= names(
        "/overviews"
    )
    assert any(
        u["email"] == "escalations-internal@example.invalid"
        for u in admin_get("/users/search?query=escalations-internal")
    )
    assert "created" in summary_line(out)
    assert out.count("\ncreate ") + out.startswith("create ") > 10


def test_the_provisioned_carrier_text_module_parses(
    zammad: ZammadSandbox, tmp_path: Path, mappings_dir: Path
) -> None:
    """What an agent inserts with ::carrier and fills in is a note the worker reads."""
    run(settings_for(tmp_path, mappings_dir))
    module = next(m for m in admin_get("/text_modules") if m["keywords"] == "carrier")
    examples = {
        "Carrier": "BT",
        "Stage": "agent",
        "Forename": "Dave",
        "Location": "Glasgow",
        "User ID": "BT-4411",
        "Time of call": "2.05pm",
    }
    hint = re.compile(r"^([^:]+): \(.*\)$")
    lines = html_to_text(module["content"]).splitlines()
    assert len(lines) == len(examples) + 1
    filled = "\n".join(
        hint.sub(lambda m: f"{m.group(1)}: {examples[m.group(1)]}", x) for x in lines
    )
    mappings = load_mappings(mappings_dir)
    note = parse_carrier_note(
        filled,
        heading=mappings.helpdesk.carrier.note_heading,
        written_at=datetime(2026, 12, 7, 15, 0, tzinfo=UTC),
        tz=mappings.profile.tz,
        stages=mappings.profile.carrier.stages,
        required=mappings.profile.carrier.required_details,
    )
    assert note is not None
    assert note.complete, (note.missing, note.problems)
    assert (note.carrier, note.forename, note.user_id) == ("BT", "Dave", "BT-4411")


def test_a_second_run_writes_nothing(
    zammad: ZammadSandbox, tmp_path: Path, mappings_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path, mappings_dir)
    run(settings)
    capsys.readouterr()
    zammad.clear_requests()

    assert run(settings) == 0

    assert writes(zammad) == []
    out = capsys.readouterr().out
    assert out.strip().splitlines() == [summary_line(out)]
    assert "nothing to do" in summary_line(out)
    assert "changed by hand" not in out


def test_a_dry_run_writes_nothing_and_says_what_it_would_do(
    zammad: ZammadSandbox, tmp_path: Path, mappings_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings_for(tmp_path, mappings_dir), dry_run=True) == 0

    assert writes(zammad) == []
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("provision: would change ")
    assert any(line.startswith("would create    macros 'Escalate'") for line in lines[:-1])
    assert all(line.startswith("would ") for line in lines[:-1])


def test_a_macro_changed_by_hand_is_kept_and_forced_only_on_request(
    zammad: ZammadSandbox, tmp_path: Path, mappings_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path, mappings_dir)
    run(settings)
    macro = next(m for m in admin_get("/macros") if m["name"] == "Escalation: customer confirmed")
    mine = {**macro["perform"], "ticket.priority_id": {"value": "3"}}
    admin_put(f"/macros/{macro['id']}", {"perform": mine})
    capsys.readouterr()

    run(settings)
    out = capsys.readouterr().out
    assert "changed by hand, kept macros 'Escalation: customer confirmed'" in out
    assert "1 changed by hand and kept (--force overwrites them)" in summary_line(out)
    kept = next(m for m in admin_get("/macros") if m["id"] == macro["id"])
    assert kept["perform"]["ticket.priority_id"] == {"value": "3"}

    run(settings, force=True)
    capsys.readouterr()
    forced = next(m for m in admin_get("/macros") if m["id"] == macro["id"])
    assert "ticket.priority_id" not in forced["perform"]


def test_a_new_reason_in_process_toml_updates_the_attribute(
    zammad: ZammadSandbox, tmp_path: Path, mappings_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path, mappings_dir)
    run(settings)
    process = mappings_dir / "process.toml"
    text = process.read_text(encoding="utf-8")
    marker = "[[reasons]]"
    assert marker in text
    process.write_text(
        text.replace(
            marker,
            '[[reasons]]\nkey = "fibre_cut"\nlabel = "Fibre cut"\ncategory = "crisis"\n\n' + marker,
            1,
        ),
        encoding="utf-8",
    )
    capsys.readouterr()

    run(settings)

    out = capsys.readouterr().out
    assert "update    object_manager_attributes 'escalation_reason'" in out
    assert "changed by hand" not in out
    reason = next(
        a for a in admin_get("/object_manager_attributes") if a["name"] == "escalation_reason"
    )
    assert reason["data_option"]["options"]["fibre_cut"] == "Fibre cut"
    assert not reason["to_migrate"]


def test_the_webhook_and_its_trigger_on_request(
    zammad: ZammadSandbox, tmp_path: Path, mappings_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path, mappings_dir, webhook_secret="w3bhook-s3cret")
    run(settings, webhook_url="https://worker.isp.example:8080/zammad-webhook")
    out = capsys.readouterr().out
    assert "w3bhook-s3cret" not in out
    hooks = admin_get("/webhooks")
    assert [h["endpoint"] for h in hooks] == ["https://worker.isp.example:8080/zammad-webhook"]
    triggers = [t for t in admin_get("/triggers") if "webhook" in str(t["perform"])]
    assert len(triggers) == 1
    assert triggers[0]["perform"]["notification.webhook"]["webhook_id"] == str(hooks[0]["id"])


def test_webhook_url_without_the_secret_is_refused(
    zammad: ZammadSandbox, tmp_path: Path, mappings_dir: Path
) -> None:
    with pytest.raises(ConfigError, match="ESCALATIONS_WEBHOOK_SECRET"):
        run(settings_for(tmp_path, mappings_dir), webhook_url="https://worker.isp.example/h")
    assert writes(zammad) == []


def test_the_cli_without_an_admin_token_says_so_in_one_line(
    zammad: ZammadSandbox,
    tmp_path: Path,
    mappings_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", BASE)
    monkeypatch.setenv("ESCALATIONS_MAPPINGS_DIR", str(mappings_dir))
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("ESCALATIONS_HELPDESK_ADMIN_TOKEN", raising=False)

    assert main(["provision"]) == 78

    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("escalations:")]
    assert len(err) == 1
    assert "ESCALATIONS_HELPDESK_ADMIN_TOKEN" in err[0]
    assert writes(zammad) == []


def test_an_agent_token_as_admin_token_names_the_permissions(
    zammad: ZammadSandbox,
    tmp_path: Path,
    mappings_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", BASE)
    monkeypatch.setenv("ESCALATIONS_MAPPINGS_DIR", str(mappings_dir))
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ESCALATIONS_HELPDESK_ADMIN_TOKEN", BOT)

    assert main(["provision"]) == 78

    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("escalations:")]
    assert len(err) == 1
    assert "docs/admins.md" in err[0]
    assert BOT not in err[0]


def test_attributes_left_staged_by_a_failed_run_are_migrated_by_the_next(
    zammad: ZammadSandbox,
    tmp_path: Path,
    mappings_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Zammad restarting for longer than provision waits: the attributes stay staged. The
    next run has nothing to write for them, but must still run the migrations."""
    from connector.errors import TransientError
    from connector.zammad import ZammadAdmin

    settings = settings_for(tmp_path, mappings_dir)
    real = ZammadAdmin.execute_migrations

    def restarting(self: ZammadAdmin, *, timeout_s: float = 120.0) -> None:
        raise TransientError("Zammad's migrations did not finish within 120 s")

    monkeypatch.setattr(ZammadAdmin, "execute_migrations", restarting)
    with pytest.raises(TransientError):
        run(settings)
    # what was written before the failure is said
    assert "create    object_manager_attributes 'escalation_requested'" in capsys.readouterr().out
    staged = [a for a in admin_get("/object_manager_attributes") if a["to_create"]]
    assert staged, "the failed run should have left staged attributes"
    monkeypatch.setattr(ZammadAdmin, "execute_migrations", real)
    capsys.readouterr()

    assert run(settings) == 0

    assert [a["name"] for a in admin_get("/object_manager_attributes") if a["to_create"]] == []
    assert "Escalate" in names("/macros")


def test_a_refused_admin_token_names_the_admin_token(
    zammad: ZammadSandbox,
    tmp_path: Path,
    mappings_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", BASE)
    monkeypatch.setenv("ESCALATIONS_MAPPINGS_DIR", str(mappings_dir))
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ESCALATIONS_HELPDESK_ADMIN_TOKEN", "not-a-token")

    assert main(["provision", "--dry-run"]) == 78

    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("escalations:")]
    assert len(err) == 1
    assert "ESCALATIONS_HELPDESK_ADMIN_TOKEN" in err[0]
    assert "ESCALATIONS_HELPDESK_TOKEN " not in err[0]
    assert "not-a-token" not in err[0]


def test_the_documented_permissions_are_enough(
    zammad: ZammadSandbox, tmp_path: Path, mappings_dir: Path
) -> None:
    """docs/admins.md's table without admin.trigger/admin.webhook (only --webhook-url needs
    them): provision reads no trigger or webhook list."""
    documented = [
        "admin.object", "admin.ticket_state", "admin.group", "admin.tag", "admin.user",
        "admin.macro", "admin.overview", "admin.text_module", "admin.role",
    ]  # fmt: skip
    table = (Path(__file__).resolve().parents[3] / "docs" / "admins.md").read_text()
    assert all(f"`{p}`" in table for p in documented)
    token = zammad.issue_token("admin@isp.example", documented, value="documented-token")
    settings = settings_for(tmp_path, mappings_dir, helpdesk_admin_token=token)

    assert run(settings) == 0

    assert not [r for r in zammad.requests if r[1].endswith(("/triggers", "/webhooks"))]


def test_an_overview_role_not_in_zammad_is_one_line(
    zammad: ZammadSandbox, tmp_path: Path, mappings_dir: Path
) -> None:
    spec = mappings_dir / "zammad-provision.toml"
    spec.write_text(spec.read_text().replace('roles = ["Agent"]', 'roles = ["Agnet"]'))
    with pytest.raises(ConfigError, match=r"overviews\.roles: role\(s\) 'Agnet' not found"):
        run(settings_for(tmp_path, mappings_dir))
    assert not [r for r in writes(zammad) if r[1].endswith("/overviews")]


def test_a_dry_run_lists_every_object_unchanged_ones_too(
    zammad: ZammadSandbox, tmp_path: Path, mappings_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path, mappings_dir)
    run(settings)
    capsys.readouterr()

    run(settings, dry_run=True)

    lines = capsys.readouterr().out.strip().splitlines()
    assert "unchanged macros 'Escalate'" in lines
    assert "unchanged users 'escalations-internal@example.invalid' (placeholder customer)" in lines
    assert len(lines) - 1 == int(lines[-1].split(", ")[-1].split()[0])  # one per unchanged


def test_provision_goes_through_the_configured_proxy(
    tmp_path: Path,
    mappings_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The admin client uses the worker's session: ``ESCALATIONS_HTTPS_PROXY``, never the
    environment's ``HTTPS_PROXY``."""
    from tests.connector.test_http import RecordingProxy

    configured, from_environment = RecordingProxy(), RecordingProxy()
    try:
        monkeypatch.setenv("ESCALATIONS_HELPDESK_URL", "https://zammad.example.com")
        monkeypatch.setenv("ESCALATIONS_HELPDESK_ADMIN_TOKEN", ADMIN)
        monkeypatch.setenv("ESCALATIONS_MAPPINGS_DIR", str(mappings_dir))
        monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(tmp_path / "state"))
        monkeypatch.setenv("ESCALATIONS_HTTPS_PROXY", configured.url)
        monkeypatch.setenv("ESCALATIONS_HTTP_MAX_ATTEMPTS", "1")
        for name in ("NO_PROXY", "no_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", from_environment.url)
        assert main(["provision", "--dry-run"]) != 0  # the proxy refuses the tunnel
        capsys.readouterr()
    finally:
        configured.close()
        from_environment.close()
    assert configured.lines
    assert all(line.startswith("CONNECT zammad.example.com:443 ") for line in configured.lines)
    assert from_environment.lines == []
