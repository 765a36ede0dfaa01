"""``python -m bench``: run the benchmarks and print ``docs/benchmarks.md`` (``--write-docs``
writes it). ``--quick`` is a smoke run at tiny sizes, for the test and a first look;
``--pg-section-only`` measures nothing and renders again only the section on the two-worker
PostgreSQL harness, whose runs record themselves in ``bench/results/pg_workers.json``."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import pg_workers
from bench.figures import Bench, Config, Figure
from bench.report import render

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
QUICK = Config(
    workdir=Path(),
    runs=1,
    idle_sizes=((300, 0), (300, 20)),
    action_tickets=100,
    attachments=(0, 1),
    poll_interval=1,
    latency_samples=2,
    timed_sizes=(10, 40),
    backlog_sizes=(5, 20),
    burst_emails=20,
    burst_escalations=5,
    report_sizes=(3,),
)


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    pairs = []
    for item in text.split(","):
        tickets, _, escalations = item.partition(":")
        pairs.append((int(tickets), int(escalations or 0)))
    return tuple(pairs)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes, one run each (seconds)")
    p.add_argument("--write-docs", action="store_true", help=f"write {DOCS.name} in docs/")
    p.add_argument("--output", type=Path, help="write the report to this file instead")
    p.add_argument(
        "--pg-section-only",
        action="store_true",
        help=f"measure nothing: render only the two-worker PostgreSQL section of {DOCS.name} "
        "again from bench/results/pg_workers.json (with --write-docs, or into --output)",
    )
    p.add_argument("--latency-ms", type=float, help="injected per-request latency (20)")
    p.add_argument("--runs", type=int, help="runs per figure (5)")
    p.add_argument("--idle-sizes", type=_sizes, help="TICKETS:ESCALATIONS,… for the idle pass")
    p.add_argument("--timed-sizes", type=_ints, help="open escalations for the timed pass")
    p.add_argument("--poll-interval", type=int, help="seconds, for the latency figure (10)")
    p.add_argument("--latency-samples", type=int, help="emails timed in poll mode (6)")
    p.add_argument("--burst", type=_ints, help="EMAILS,ESCALATIONS (500,100)")
    p.add_argument("--workdir", type=Path, help="keep the rigs' state here (default: temporary)")
    return p.parse_args(argv)


def config_from(args: argparse.Namespace, workdir: Path) -> Config:
    base = QUICK if args.quick else Config(workdir=workdir)
    changes: dict[str, object] = {"workdir": workdir}
    if args.latency_ms is not None:
        changes["latency"] = args.latency_ms / 1000
    for name in ("runs", "idle_sizes", "timed_sizes", "poll_interval", "latency_samples"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.burst is not None:
        changes["burst_emails"], changes["burst_escalations"] = args.burst
    from dataclasses import replace

    return replace(base, **changes)  # type: ignore[arg-type]


def run(config: Config, command: str) -> tuple[str, list[Figure]]:
    started = time.perf_counter()
    bench = Bench(config, lambda line: print(f"bench: {line}", file=sys.stderr, flush=True))
    figures = [bench.import_cost()]
    figures = [
        bench.idle_pass(),
        bench.reach,
        bench.copy(),
        bench.raise_one(),
        bench.latency_poll(),
        bench.timed_jobs(),
        bench.backlog(),
        bench.burst(),
        bench.client_cpu(),
        bench.what_ifs(),
        bench.reconcile_report(),
        *figures,
    ]
    took = time.perf_counter() - started
    text = render(figures, config, command, bench.profile_text, took, bench.profile_shares)
    return text, figures


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.pg_section_only:
        return _pg_section_only(args)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        text, _ = run(config_from(args, workdir), command.strip())
    _emit(args, text, "")
    return 0


def _pg_section_only(args: argparse.Namespace) -> int:
    try:
        text = pg_workers.refresh(DOCS.read_text(encoding="utf-8"))
    except (OSError, pg_workers.NoSection) as exc:
        print(f"bench: cannot refresh {DOCS}: {exc}", file=sys.stderr)
        return 1
    _emit(args, text, "the PostgreSQL section of ")
    return 0


def _emit(args: argparse.Namespace, text: str, what: str) -> None:
    """``text`` to ``--output``, to ``docs/benchmarks.md`` with ``--write-docs``, else to
    standard output."""
    target = args.output or (DOCS if args.write_docs else None)
    if target is None:
        sys.stdout.write(text)
    else:
        target.write_text(text, encoding="utf-8")
        print(f"bench: wrote {what}{target}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
