"""Summaries of repeated runs, and a worker process measured from outside (``os.wait4``: CPU,
wall and peak resident memory of ``escalations run --once`` against a rig)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.rig import Rig

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Spread:
    """Several runs of one figure: median, min and max."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no runs")
        return cls(tuple(values))

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def show(self, fmt: str = "{:.0f}", unit: str = "") -> str:
        median = fmt.format(self.median) + unit
        if len(self.values) == 1 or self.low == self.high:
            return median
        return f"{median} ({fmt.format(self.low)}–{fmt.format(self.high)})"


@dataclass(frozen=True)
class ProcessRun:
    cpu: float
    """User + system seconds of the process."""
    wall: float
    max_rss_mb: float
    """The child's own peak resident set (``VmHWM``, sampled while it runs)."""
    requests: int
    writes: int
    stderr: str


def worker_env(rig: Rig, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith("ESCALATIONS_") and k != "CREDENTIALS_DIRECTORY"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(
        ESCALATIONS_HELPDESK_URL=rig.server.url,
        ESCALATIONS_HELPDESK_TOKEN=rig.token,
        ESCALATIONS_STATE_DIR=str(rig.workdir),
        ESCALATIONS_HTTP_REQUESTS_PER_MINUTE=str(rig.settings.http_requests_per_minute),
    )
    env.update(extra)
    return env


def run_process(rig: Rig, argv: Sequence[str], *, timeout: float = 900) -> ProcessRun:
    """Run ``argv`` (a Python command line) as a child; its resource use from ``wait4``."""
    before = len(rig.sandbox.requests)
    log = rig.workdir / "child.stderr"
    with log.open("w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, *argv],
            env=worker_env(rig),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        deadline = started + timeout
        peak_kib = 0
        while True:
            peak_kib = max(peak_kib, high_water_kib(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                raise TimeoutError(f"{' '.join(argv)} ran longer than {timeout}s")
            time.sleep(0.005)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = log.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{stderr[-2000:]}")
    calls = rig.sandbox.requests[before:]
    writes = sum(
        1
        for method, path, _ in calls
        if method in ("POST", "PUT", "DELETE") and path != "/api/v1/tickets/search"
    )
    return ProcessRun(
        cpu=usage.ru_utime + usage.ru_stime,
        wall=wall,
        max_rss_mb=peak_kib / 1024,
        requests=len(calls),
        writes=writes,
        stderr=stderr,
    )


def high_water_kib(pid: int) -> int:
    """The process's peak resident set so far (``VmHWM``), 0 once it has exited.

    Not ``ru_maxrss``: Linux carries it across ``exec`` from the forking parent (the
    harness, which holds the whole sandbox), so a child's own peak has to be read while it
    runs. Sampled every few milliseconds, the last sample is within that of the true peak."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_once(rig: Rig) -> ProcessRun:
    """``escalations run --once --at <the rig's now>``: one pass of every timed job."""
    at = rig.now().isoformat()
    return run_process(rig, ["-m", "escalations", "run", "--once", "--at", at])
