"""The benchmark harness at a tiny size: it runs end to end against the loopback sandbox and
produces every figure of ``docs/benchmarks.md``. Counts, not timings: CI never runs the full
harness, and no figure here is held to a speed target."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from bench.__main__ import QUICK, run

FIGURES = {
    "idle",
    "reach",
    "copy",
    "raise",
    "latency",
    "timed",
    "backlog",
    "burst",
    "cpu",
    "whatif",
    "import",
    "report",
}


def test_the_harness_produces_every_figure(tmp_path: Path) -> None:
    config = replace(QUICK, workdir=tmp_path, latency=0.005)
    text, figures = run(config, "python -m bench --quick")
    assert {f.key for f in figures} == FIGURES
    for fig in figures:
        assert fig.rows, f"{fig.key}: no rows"
        assert fig.verdict, f"{fig.key}: no verdict"
        assert all(len(row) == len(fig.columns) for row in fig.rows), fig.key
        assert f"## {fig.title}" in text
    by_key = {f.key: f for f in figures}
    idle = by_key["idle"]
    for row in idle.rows:
        requests, wall_ms = int(row[2]), float(row[3])
        # the injected latency is real: a pass cannot be quicker than its round trips
        assert wall_ms >= requests * config.latency * 1000
        naive = int(row[5])
        tickets, escalations = int(row[0].replace(",", "")), int(row[1].replace(",", ""))
        assert naive >= -(-tickets // 200) + 2 * escalations  # the baseline ran, as documented
    # the copy and raise rows name the requests they counted, from the sandbox's log
    assert re.search(r"POST ticket_articles", by_key["copy"].rows[0][-1])
    assert "POST tickets" in by_key["raise"].rows[0][-1]
    # the report's figure: its requests counted from the sandbox's log, at both latencies
    report = by_key["report"]
    assert [row[1] for row in report.rows] == ["0 ms", "5 ms"]
    assert all(int(row[2].replace(",", "")) > 0 for row in report.rows)
    assert "Machine:" in text
    assert "Command: `python -m bench --quick`" in text
