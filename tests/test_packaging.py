"""The packaging in ``packaging/``: the systemd unit carries the directives the worker relies
on and passes ``systemd-analyze`` (``packaging/check-unit``, the script CI runs), the exposure
the docs state is the one measured, ``packaging/install.sh`` installs into a temporary root
without overwriting what the admin owns, and ``packaging/constraints.txt`` pins exactly the
runtime dependencies."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from escalations.app.provision import provision_sandbox
from escalations.clock import SystemClock
from sandbox import ZammadSandbox, serve

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
CHANGELOG = ROOT / "CHANGELOG.md"
UNIT = PACKAGING / "helpdesk-escalations.service"
CHECK_UNIT = PACKAGING / "check-unit"
INSTALL = PACKAGING / "install.sh"
README = ROOT / "README.md"
EXPOSURE = re.compile(r"exposure level (\d+\.\d)")


def unit_directives(text: str) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values in order]}}``; a key may repeat (``SystemCallFilter=``)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a directive before any section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


REQUIRED = {
    "Type": ["notify"],
    "NotifyAccess": ["main"],
    "ExecStart": ["/opt/helpdesk-escalations/venv/bin/escalations run"],
    "WatchdogSec": ["90s"],
    "Restart": ["on-failure"],
    "RestartPreventExitStatus": ["78"],
    "DynamicUser": ["yes"],
    "StateDirectory": ["helpdesk-escalations"],
    "StateDirectoryMode": ["0700"],
    "ConfigurationDirectory": ["helpdesk-escalations"],
    "LoadCredential": ["helpdesk-token:/etc/helpdesk-escalations/token"],
    "EnvironmentFile": ["-/etc/helpdesk-escalations/env"],
    "Environment": ["ESCALATIONS_MAPPINGS_DIR=/etc/helpdesk-escalations/mappings"],
    "UMask": ["0077"],
    # the hardening of RELIABILITY.md §B5
    "NoNewPrivileges": ["yes"],
    "ProtectSystem": ["strict"],
    "ProtectHome": ["yes"],
    "PrivateTmp": ["yes"],
    "PrivateDevices": ["yes"],
    "PrivateUsers": ["yes"],
    "ProtectHostname": ["yes"],
    "ProtectClock": ["yes"],
    "ProtectKernelTunables": ["yes"],
    "ProtectKernelModules": ["yes"],
    "ProtectKernelLogs": ["yes"],
    "ProtectControlGroups": ["yes"],
    "ProtectProc": ["invisible"],
    "ProcSubset": ["pid"],
    "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
    "RestrictNamespaces": ["yes"],
    "RestrictRealtime": ["yes"],
    "RestrictSUIDSGID": ["yes"],
    "LockPersonality": ["yes"],
    "MemoryDenyWriteExecute": ["yes"],
    "RemoveIPC": ["yes"],
    "CapabilityBoundingSet": [""],
    "AmbientCapabilities": [""],
    "SystemCallArchitectures": ["native"],
    "SystemCallFilter": ["@system-service", "~@privileged @resources"],
    "DevicePolicy": ["closed"],
    "KeyringMode": ["private"],
}


def test_the_unit_carries_the_directives_the_worker_relies_on() -> None:
    unit = unit_directives(UNIT.read_text(encoding="utf-8"))
    service = unit["Service"]
    assert {key: service.get(key) for key in REQUIRED} == REQUIRED
    (stop,) = service["TimeoutStopSec"]
    assert stop.endswith("s")
    assert int(stop.removesuffix("s")) >= 30  # connect + read timeouts (5 + 30 s by default)
    assert unit["Unit"]["After"] == ["network-online.target"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_default_timeouts_fit_the_units_watchdog() -> None:
    """``run`` refuses connect + read timeouts that are not under half of WatchdogSec=
    (one helpdesk attempt has no ping inside it). With WatchdogSec=60s the shipped unit
    refused its own defaults (5 s + 30 s); at 90 s they fit."""
    from escalations.app.preflight import ensure_fits_watchdog
    from escalations.settings import Settings

    (watchdog,) = unit_directives(UNIT.read_text(encoding="utf-8"))["Service"]["WatchdogSec"]
    ensure_fits_watchdog(Settings(), float(watchdog.removesuffix("s")))


def test_the_settings_example_is_the_env_file_the_unit_reads() -> None:
    # install.sh installs settings.example.env as the unit's EnvironmentFile=
    assert (ROOT / "settings.example.env").is_file()
    assert "/etc/helpdesk-escalations/env" in (ROOT / "settings.example.env").read_text()


def _systemd_analyze() -> None:
    """Skip without ``systemd-analyze`` on a developer's machine; under CI it is a failure
    (``.ci/run`` installs Debian's systemd package)."""
    if shutil.which("systemd-analyze") is not None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("systemd-analyze is missing under CI (.ci/run installs Debian's systemd)")
    pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")


def _escalations_program() -> Path:
    """This test run's own ``escalations`` (the venv's), to stand in for ExecStart's."""
    candidate = Path(sys.executable).parent / "escalations"
    if candidate.is_file():
        return candidate
    found = shutil.which("escalations")
    assert found, "no escalations program next to this Python or on PATH"
    return Path(found)


def _check_unit(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CHECK_UNIT), "--escalations", str(_escalations_program()), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_unit_passes_and_the_docs_state_the_exposure_it_measures() -> None:
    _systemd_analyze()
    result = _check_unit()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check-unit: verify ok" in result.stdout
    assert "check-unit: security ok (threshold 20)" in result.stdout
    (measured,) = re.findall(r"^exposure: (\d+\.\d)$", result.stdout, re.MULTILINE)
    assert float(measured) <= 2.0
    for doc in (UNIT, README):
        stated = EXPOSURE.findall(doc.read_text(encoding="utf-8"))
        assert stated, f"{doc.name} does not state the exposure level"
        assert set(stated) == {measured}, f"{doc.name} says {stated}, measured {measured}"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda text: text.replace("\nProtectHome=yes\n", "\nProtectHomes=yes\n"),
            "Unknown key 'ProtectHomes'",
        ),
        (
            # the life-cycle lines only: every hardening directive is gone
            lambda text: (
                text.split("# --- Identity")[0] + "\n[Install]\nWantedBy=multi-user.target\n"
            ),
            "security FAILED",
        ),
        (
            lambda text: text.replace("venv/bin/escalations run", "venv/bin/escalations-gone run"),
            "expected one ExecStart=",
        ),
    ],
    ids=["misspelt-directive", "no-hardening", "other-exec-start"],
)
def test_check_unit_fails_a_broken_unit(
    edit: Callable[[str], str], expected: str, tmp_path: Path
) -> None:
    _systemd_analyze()
    broken = tmp_path / UNIT.name
    broken.write_text(edit(UNIT.read_text(encoding="utf-8")), encoding="utf-8")
    result = _check_unit(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout + result.stderr


# MemoryDenyWriteExecute=yes: the kernel's own form of it (prctl PR_SET_MDWE, Linux 6.3+,
# inherited across execve) refuses the same writable-and-executable mappings systemd's seccomp
# filter does, so the worker can be tried under it without systemd as PID 1.
_UNDER_MDWE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(97)
os.execv(sys.argv[1], sys.argv[1:])
"""


def _under_mdwe(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ESCALATIONS_")}
    return subprocess.run(
        [sys.executable, "-c", _UNDER_MDWE, *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_worker_runs_with_writable_executable_memory_refused(tmp_path: Path) -> None:
    probe = _under_mdwe(
        sys.executable,
        "-c",
        "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)",
    )
    if probe.returncode == 97:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 or later)")
    assert "PermissionError" in probe.stderr  # the restriction is really on
    # The demo runs every job, the sanitiser, pydantic and the PDF hard copy (fpdf2, Pillow).
    demo = _under_mdwe(_escalations_program(), "demo", "--state-dir", tmp_path / "demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert list((tmp_path / "demo" / "archive").glob("*/escalation.pdf"))


# -- install.sh -----------------------------------------------------------------------------


def _install(*args: str | Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ESCALATIONS_")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    return subprocess.run(
        ["bash", str(INSTALL), "--python", sys.executable, *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )


def test_the_scripts_the_docs_run_by_path_are_executable() -> None:
    """README runs `packaging/install.sh` and CI `packaging/check-unit` by path (a commit once
    dropped install.sh's executable bit)."""
    for script in ("install.sh", "check-unit"):
        assert os.access(PACKAGING / script, os.X_OK), script


def test_install_help_names_every_option() -> None:
    result = _install("--help")
    assert result.returncode == 0
    for option in ("--token-file", "--python", "--root", "--no-systemctl", "--dry-run"):
        assert option in result.stdout


def test_install_refuses_an_unknown_option_and_a_missing_source(tmp_path: Path) -> None:
    assert _install("--frobnicate").returncode == 2
    missing = _install("--root", tmp_path, tmp_path / "nothing.whl")
    assert missing.returncode == 2
    assert "no such wheel or source tree" in missing.stderr
    assert list(tmp_path.iterdir()) == []


def test_install_dry_run_changes_nothing_and_says_every_step(tmp_path: Path) -> None:
    token = tmp_path / "token-file"
    token.write_text("a-token\n")
    target = tmp_path / "root"
    target.mkdir()
    result = _install("--dry-run", "--root", target, "--token-file", token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(target.iterdir()) == []
    out = result.stdout
    for path in (
        "opt/helpdesk-escalations/venv",
        "etc/helpdesk-escalations/mappings",
        "etc/helpdesk-escalations/env",
        "etc/helpdesk-escalations/token",
        "etc/systemd/system/helpdesk-escalations.service",
    ):
        assert f"{target}/{path}" in out
    assert f"-c {PACKAGING}/constraints.txt" in out
    assert "check --live" in out
    assert "NOTICE: systemctl skipped" in out
    assert "nothing was changed" in out


def _fake_venv(target: Path) -> Path:
    """A venv for install.sh that is this interpreter (the project installed editable) and
    whose pip install does nothing: the steps after the install run for real, fast."""
    bin_dir = target / "opt" / "helpdesk-escalations" / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = -I ] && [ "$2" = -m ] && [ "$3" = pip ]; then exit 0; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    escalations = bin_dir / "escalations"
    escalations.write_text(f'#!/bin/sh\nexec {sys.executable} -m escalations "$@"\n')
    for script in (python, escalations):
        script.chmod(0o755)
    return bin_dir


def test_install_checks_with_systemds_precedence_env_file_over_environment(
    tmp_path: Path,
) -> None:
    """Under systemd the env file (EnvironmentFile=) wins over the unit's Environment=; the
    install's check used to pass the unit's ESCALATIONS_MAPPINGS_DIR in its environment, which
    beats ``--env-file``: it checked mappings the service would not use. It also checks with
    the unit's WatchdogSec=, and names the admin's env file with its own line numbers."""
    target = tmp_path / "root"
    _fake_venv(target)
    etc = target / "etc" / "helpdesk-escalations"
    etc.mkdir(parents=True)
    env = etc / "env"
    token = tmp_path / "token-file"
    token.write_text("precedence-token-0001\n")
    closed = "ESCALATIONS_HELPDESK_URL=http://127.0.0.1:9\n"  # nothing listens: live fails

    def install(env_text: str) -> str:
        env.write_text(env_text)
        result = _install("--root", target, "--token-file", token, "--no-systemctl", ROOT)
        assert result.returncode != 0  # the live check cannot pass here
        return result.stdout + result.stderr

    out = install(closed)
    assert f"mappings: ok ({etc / 'mappings'}: " in out  # the unit's Environment= applies

    out = install(closed + "ESCALATIONS_MAPPINGS_DIR=/nonexistent-admin-mappings\n")
    assert "/nonexistent-admin-mappings" in out, out  # the env file wins, as under systemd
    assert "mappings: ok" not in out

    out = install(closed + "ESCALATIONS_HTTP_READ_TIMEOUT=50\n")
    assert "must be under half the watchdog interval (45 s of WatchdogSec=90s)" in out, out

    out = install("# a comment\n" + closed + "ESCALATIONS_LOG_LEVL=DEBUG\n")
    assert f"{env}:3: ESCALATIONS_LOG_LEVL" in out, out
    assert "/tmp/tmp." not in out  # the composed file is named as the admin's


def _source_tree(destination: Path) -> Path:
    """A copy of what a release's source tree holds for pip (building it writes build/)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    destination.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, destination / name)
    for name in ("helpdesk_escalations", "connector", "escalations", "jobs", "sandbox", "mappings"):
        shutil.copytree(ROOT / name, destination / name, ignore=ignore)
    return destination


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.timeout(600)
def test_install_into_a_temporary_root_checks_live_and_keeps_the_admins_files(
    tmp_path: Path,
) -> None:
    source = _source_tree(tmp_path / "source")
    target = tmp_path / "root"
    target.mkdir()
    etc = target / "etc" / "helpdesk-escalations"
    venv = target / "opt" / "helpdesk-escalations" / "venv"
    unit = target / "etc" / "systemd" / "system" / UNIT.name
    sandbox = ZammadSandbox.demo()
    token = tmp_path / "token-file"
    token.write_text(sandbox.token_of("escalation-bot") + "\n")

    # First run: the fresh env file names no helpdesk, so the check fails and nothing is
    # enabled; the venv, mappings, env and token are in place for the admin to edit.
    first = _install("--root", target, "--token-file", token, "--no-systemctl", source)
    assert first.returncode == 78, first.stdout + first.stderr
    assert "the service was not enabled" in first.stderr
    assert not unit.exists()
    assert (venv / "bin" / "escalations").is_file()
    assert _mode(etc) == 0o755
    assert _mode(etc / "env") == 0o600
    assert _mode(etc / "token") == 0o600
    assert (etc / "token").read_text().strip() == sandbox.token_of("escalation-bot")
    assert _mode(etc / "mappings") == 0o755
    shipped = sorted(p.name for p in (ROOT / "mappings").iterdir() if p.is_file())
    assert sorted(p.name for p in (etc / "mappings").iterdir()) == shipped
    assert all(_mode(p) == 0o644 for p in (etc / "mappings").iterdir())

    # Second run, the URL set: the live check passes against the sandbox, the unit is
    # installed as shipped, and systemctl is skipped with a notice.
    env = etc / "env"
    with serve(sandbox, host="127.0.0.1", port=0) as server:
        # provisioned first, as docs/admins.md has the admin do
        provision_sandbox(server.url, "sandbox-admin-token", SystemClock(), ROOT / "mappings")
        text = env.read_text()
        env.write_text(
            re.sub(
                r"^ESCALATIONS_HELPDESK_URL=.*$",
                f"ESCALATIONS_HELPDESK_URL={server.url}",
                text,
                flags=re.MULTILINE,
            )  # fmt: skip
        )
        second = _install("--root", target, "--no-systemctl", source)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "helpdesk: ok" in second.stdout
        assert unit.read_bytes() == UNIT.read_bytes()
        assert "NOTICE: systemctl skipped (--no-systemctl)" in second.stdout

        # An upgrade over edited mappings keeps them and says where the new defaults are.
        process = etc / "mappings" / "process.toml"
        edited = process.read_text() + "\n# the admin's own edit\n"
        process.write_text(edited)
        third = _install("--root", target, "--no-systemctl", "--token-file", token, source)
        assert third.returncode == 0, third.stdout + third.stderr
    assert process.read_text() == edited
    assert "kept as they are" in third.stdout
    assert "diff -ru " in third.stdout
    assert "site-packages/helpdesk_escalations/_lib/mappings" in third.stdout
    assert f"--token-file {token} ignored" in third.stdout

    # The wheel installs Python packages and mappings only: nothing of packaging/.
    version = subprocess.run(
        [venv / "bin" / "escalations", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == f"helpdesk-escalations {_project()['version']}"
    (record,) = venv.glob("lib/python*/site-packages/helpdesk_escalations-*.dist-info/RECORD")
    installed = [line.split(",")[0] for line in record.read_text().splitlines()]
    assert not [path for path in installed if path.startswith("packaging")]
    # One import name in site-packages (issue 14): no `jobs` or `connector` of ours beside
    # another distribution's; the console script and the dist-info are the rest.
    tops = {path.split("/")[0] for path in installed if not path.startswith("../")}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"helpdesk_escalations"}, tops
    plain = subprocess.run(
        [venv / "bin" / "python", "-I", "-c", "import jobs"], capture_output=True, text=True
    )
    assert "No module named 'jobs'" in plain.stderr


# -- constraints.txt and pyproject -----------------------------------------------------------


def _project() -> dict[str, object]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert isinstance(project, dict)
    return project


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (PACKAGING / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_the_wheel_lists_every_package_of_the_tree_under_its_one_import_name() -> None:
    """``[tool.setuptools] packages`` is written out (setuptools' ``find`` cannot put a prefix
    on what it finds): a package added to the tree and not to the list would be missing from
    the wheel, so the list must be the tree's."""
    from setuptools import find_namespace_packages

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    prefix = "helpdesk_escalations._lib."
    assert setuptools["package-dir"] == {prefix.rstrip("."): "."}
    listed = set(setuptools["packages"])
    tree = find_namespace_packages(
        where=str(ROOT), include=["connector*", "escalations*", "jobs*", "sandbox*", "mappings"]
    )
    assert listed == {"helpdesk_escalations", *(prefix + name for name in tree)}


def test_the_version_is_not_one_already_released() -> None:
    """Changes under "Unreleased" with the version of a dated entry: a reinstall of the new
    build at that version number was skipped by pip as already installed."""
    released = re.findall(r"^## (\S+) — \d{4}-\d{2}-\d{2}$", CHANGELOG.read_text(), re.M)
    assert released, "no dated entry in CHANGELOG.md"
    assert _project()["version"] not in released


def test_constraints_pin_the_runtime_dependency_closure_within_pyproject() -> None:
    dependencies = [Requirement(d) for d in _project()["dependencies"]]  # type: ignore[attr-defined]
    closure: set[str] = set()
    todo = list(dependencies)
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in closure:
            continue
        closure.add(name)
        for needed in metadata.requires(requirement.name) or []:
            nested = Requirement(needed)
            if nested.marker is None or nested.marker.evaluate({"extra": ""}):
                todo.append(nested)
    pins = _constraints()
    assert set(pins) == closure
    for requirement in dependencies:
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)])
        assert any(s.operator == "<" for s in requirement.specifier), f"{requirement}: no cap"


def test_the_readme_names_only_packaging_files_that_exist() -> None:
    named = set(re.findall(r"`(packaging/[^`\s]+)`", README.read_text(encoding="utf-8")))
    assert {"packaging/install.sh", "packaging/check-unit"} <= named
    assert [n for n in sorted(named) if not (ROOT / n.split()[0]).exists()] == []


def test_ci_tests_every_python_version_the_classifiers_claim() -> None:
    """The classifiers name 3.11-3.13; CI ran only 3.11. Now ``.ci/run`` runs
    ``.ci/other-pythons``, which covers every other claimed version (when the machine has
    it) with a subset of test files that exist."""
    claimed = {
        c.rsplit(" :: ", 1)[1]
        for c in _project()["classifiers"]  # type: ignore[attr-defined]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    script = (ROOT / ".ci" / "other-pythons").read_text()
    (loop,) = re.findall(r"^for version in ([\d. ]+); do$", script, re.MULTILINE)
    assert claimed == {"3.11", *loop.split()}
    subset = re.search(r"^SUBSET=\(\n(.*?)^\)", script, re.MULTILINE | re.DOTALL)
    assert subset is not None
    files = subset.group(1).split()
    assert files
    assert all((ROOT / name).is_file() for name in files), files
    assert "bash .ci/other-pythons" in (ROOT / ".ci" / "run").read_text().splitlines()
