"""The reconciliation report at size (issue 16): ``python -m bench.reconcile_report [N]``
raises one escalation through the worker on the loopback sandbox, copies it to ``N`` open
escalations (``bench/seeding.py``), and builds the report once per latency, printing its
helpdesk requests, wall time and CPU. The seeder copies the articles verbatim, so each
clone's copy carries the template's marker and the report lists one email not copied per
clone: the figure is the cost of a night with that many findings. Figures:
``docs/report.md``; ``python -m bench`` measures it too (``docs/benchmarks.md``)."""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bench.rig import Rig
from bench.seeding import EscalationCloner
from jobs import reconcile

TEMPLATE_TITLE = "Broadband down since Monday"
LATENCIES = (0.0, 0.02)


@dataclass(frozen=True)
class Measured:
    escalations: int
    latency: float
    requests: int
    wall: float
    cpu: float
    """This process's CPU: the report and the sandbox answering it."""
    findings: int
    kinds: tuple[str, ...]


def measure(escalations: int, latency: float, workdir: Path) -> Measured:
    rig = Rig(workdir, latency=0.0)
    try:
        rig.run_pass()
        rig.settle()
        original = rig.ticket_by_title(TEMPLATE_TITLE)
        rig.flag(original)
        for _ in range(3):
            rig.run_pass()
        rig.settle()
        esc = rig.store.active_escalation_for_ticket(original)
        assert esc is not None, "the template escalation was not raised"
        if escalations > 1:
            EscalationCloner(rig.sandbox, rig.store_path, esc.id).clone(escalations - 1)
        rig.run_pass(advance=timedelta(minutes=30))  # past the report's grace, polled
        rig.server.latency = latency
        ctx = rig.installation.ctx
        before = len(rig.sandbox.requests)
        wall, cpu = time.perf_counter(), time.process_time()
        report = reconcile.build_report(ctx, rig.now())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return Measured(
            escalations=escalations,
            latency=latency,
            requests=len(rig.sandbox.requests) - before,
            wall=wall,
            cpu=cpu,
            findings=len(report.findings),
            kinds=tuple(sorted({f.kind.value for f in report.findings})),
        )
    finally:
        rig.close()


def row(m: Measured) -> str:
    return (
        f"| {m.escalations:,} | {m.latency * 1000:.0f} ms | {m.requests:,} | {m.wall:.1f} s | "
        f"{m.cpu:.1f} s | {m.findings} |"
    )


def main(argv: list[str]) -> int:
    escalations = int(argv[0]) if argv else 1000
    columns = ("open escalations", "latency", "requests", "wall", "CPU (one process)", "findings")
    print("| " + " | ".join(columns) + " |")
    print("|---" * len(columns) + "|")
    for latency in LATENCIES:
        with tempfile.TemporaryDirectory() as tmp:
            m = measure(escalations, latency, Path(tmp))
            print(f"findings: {list(m.kinds)}", file=sys.stderr)
            print(row(m), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
