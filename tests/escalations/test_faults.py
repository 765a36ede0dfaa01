from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from escalations.errors import ConfigError
from escalations.faults import (
    POINTS,
    CrashAt,
    NoFaults,
    RaiseAt,
    SimulatedCrash,
    faults_from_env,
)


def test_simulated_crash_escapes_except_exception() -> None:
    assert not issubclass(SimulatedCrash, Exception)

    def guarded() -> None:
        try:
            RaiseAt("effect.sent").point("effect.sent", kind="x")
        except Exception:
            pytest.fail("swallowed")

    with pytest.raises(SimulatedCrash):
        guarded()


def test_no_faults_does_nothing() -> None:
    for name in POINTS:
        NoFaults().point(name, kind="anything")


def test_raise_at_fires_on_the_nth_matching_hit_only() -> None:
    faults = RaiseAt("effect.claimed", kind="copy", nth=2)
    faults.point("effect.claimed", kind="copy")
    faults.point("effect.claimed", kind="create")  # other kind: not counted
    faults.point("effect.sent", kind="copy")  # other point: not counted
    with pytest.raises(SimulatedCrash, match="effect.claimed"):
        faults.point("effect.claimed", kind="copy")
    assert faults.fired
    faults.point("effect.claimed", kind="copy")  # once only


@pytest.mark.parametrize("kind", [None, "*"])
def test_any_kind_matches(kind: str | None) -> None:
    faults = RaiseAt("effect.committed", kind=kind)
    with pytest.raises(SimulatedCrash):
        faults.point("effect.committed", kind="whatever")


def test_raise_at_takes_another_exception() -> None:
    with pytest.raises(KeyboardInterrupt):
        RaiseAt("intent.committed", exc=KeyboardInterrupt).point("intent.committed")


def test_unknown_points_and_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault point"):
        RaiseAt("effect.snet")
    with pytest.raises(ValueError, match="counts from 1"):
        CrashAt("effect.sent", nth=0)


def test_crash_at_sends_sigkill_to_itself() -> None:
    with mock.patch("escalations.faults.os.kill") as kill:
        CrashAt("effect.sent", kind="create", nth=1).point("effect.sent", kind="create")
    kill.assert_called_once()
    assert kill.call_args.args[1] == signal.SIGKILL


def test_crash_at_really_kills_the_process() -> None:
    code = (
        "from escalations.faults import CrashAt\n"
        "CrashAt('effect.claimed').point('effect.claimed', kind='k')\n"
        "print('survived')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == -signal.SIGKILL
    assert "survived" not in done.stdout


def test_faults_from_env() -> None:
    assert isinstance(faults_from_env({}), NoFaults)
    assert isinstance(faults_from_env({"ESCALATIONS_TEST_CRASH_AT": " "}), NoFaults)
    faults = faults_from_env({"ESCALATIONS_TEST_CRASH_AT": "effect.sent:create_escalation:2"})
    assert isinstance(faults, CrashAt)
    assert (faults.name, faults.kind, faults.nth) == ("effect.sent", "create_escalation", 2)
    faults = faults_from_env({"ESCALATIONS_TEST_CRASH_AT": "intent.committed:*:1"})
    assert isinstance(faults, CrashAt)
    assert faults.kind is None
    faults = faults_from_env({"ESCALATIONS_TEST_CRASH_AT": "effect.claimed"})
    assert isinstance(faults, CrashAt)
    assert (faults.kind, faults.nth) == (None, 1)


@pytest.mark.parametrize(
    "spec", ["nowhere:*:1", "effect.sent:*:x", "effect.sent:*:0", "effect.sent:a:1:2"]
)
def test_bad_crash_specs_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError, match="ESCALATIONS_TEST_CRASH_AT"):
        faults_from_env({"ESCALATIONS_TEST_CRASH_AT": spec})
