"""``docs/benchmarks.md``: the machine, the command, one table per figure with its target and
verdict, the profile, and the closing summary."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import pg_workers
from bench.figures import Config, Figure


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.1f} GiB RAM"
    return (
        f"{cpu}, {os.cpu_count()} CPUs{memory}; {platform.system()} {platform.release()}; "
        f"Python {sys.version.split()[0]}"
    )


def table(fig: Figure) -> str:
    head = "| " + " | ".join(fig.columns) + " |"
    rule = "| " + " | ".join("---" for _ in fig.columns) + " |"
    body = ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in fig.rows]
    return "\n".join([head, rule, *body])


def closing(figures: list[Figure], shares: list[tuple[str, float]]) -> list[str]:
    """Which targets this run met, which it missed, and what the profile blames."""
    met = [f.title for f in figures if "missed" not in f.verdict and f.verdict != "measured"]
    missed = [f for f in figures if f.title not in met and f.verdict != "measured"]
    out = ["", "## Closing note", "", "Met in this run:", ""]
    out += [f"- {title}" for title in met] or ["- none"]
    out += ["", "Missed, or met only in part:", ""]
    out += [f"- {f.title}: {f.verdict}" for f in missed] or ["- none"]
    out += [
        "",
        "Each missed request figure lists the requests it counted and says in its notes what "
        "each is for and what closing the gap needs. The client CPU per request is explained "
        "by the burst's profile below; its named shares, largest first: "
        + "; ".join(f"{label} {share:.0%}" for label, share in shares if share >= 0.005)
        + ".",
    ]
    return out


def render(
    figures: list[Figure],
    config: Config,
    command: str,
    profile: str,
    took: float,
    shares: list[tuple[str, float]] | None = None,
    pg_workers_results: Path = pg_workers.RESULTS,
) -> str:
    """The document; the section on two workers on PostgreSQL is rendered from the runs
    recorded in ``pg_workers_results`` (``bench.pg_workers``), not measured here."""
    out = [
        "# Benchmarks",
        "",
        "Written by `python -m bench --write-docs` (`bench/`); do not edit by hand. Every "
        "figure comes from one run of the harness: the real worker and the real Zammad "
        "adapter over real HTTP to the sandbox served on loopback, every answer delayed by "
        f"an injected {config.latency * 1000:.0f} ms, requests counted from the sandbox's "
        "own request log. Timings are the median of the runs, (min–max) when they differ. "
        "CI does not run the harness; `tests/bench/test_harness.py` runs it at a tiny size "
        "and checks it produces every figure.",
        "",
        f"- Machine: {machine()}",
        f"- Command: `{command}`",
        f"- Run: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, {took / 60:.1f} minutes, "
        f"{config.runs} runs per figure",
        "",
        "## Summary",
        "",
        "| figure | target | verdict |",
        "| --- | --- | --- |",
    ]
    out += [f"| {f.title} | {f.target} | {f.verdict} |" for f in figures]
    out.append(pg_workers.summary_row(pg_workers_results))
    for fig in figures:
        out += ["", f"## {fig.title}", "", f"Target: {fig.target}. Verdict: **{fig.verdict}**.", ""]
        out.append(table(fig))
        for note in fig.notes:
            out += ["", note]
    out += ["", *pg_workers.section(pg_workers_results)]
    out += closing(figures, shares or [])
    if profile:
        out += [
            "",
            "## Profile of the burst (cProfile on the worker thread's CPU clock)",
            "",
            "```",
            profile,
            "```",
        ]
    return "\n".join(out) + "\n"
