"""The two-worker PostgreSQL section of ``docs/benchmarks.md`` (issue 19): rendered from the
runs the harness recorded, failed ones included, each with its date and command."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import pg_workers
from bench.figures import Config
from bench.report import render

PASSED = {
    "date": "2026-12-07 15:30",
    "command": "SOAK_PG=1 python -m pytest -q -s tests/reliability/test_pg_workers.py",
    "commit": "b83f408",
    "seed": 1075822918,
    "outcome": "passed",
    "kills": 5,
    "leader_kills": 3,
    "pauses": 4,
    "leader_pauses": 2,
    "escalations": 52,
    "copies": 697,
    "failover_median": 3.31,
    "failover_max": 3.72,
    "longest_write_lock_wait_seconds": 4.4,
}
FAILED = {
    "date": "2026-12-07 15:40",
    "command": "SOAK_PG=1 SOAK_PG_JOB_INTERVAL=10 python -m pytest -q -s …",
    "seed": 888739097,
    "outcome": "failed",
    "failure": "SOAK_SEED=888739097 SOAK_PG_KILLS=5 SOAK_PG_PAUSES=4: a | b",
    "kills": 5,
    "leader_kills": 5,
    "pauses": 4,
    "leader_pauses": 1,
}


def test_the_section_renders_every_recorded_run_with_its_date_and_command(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results" / "pg_workers.json"
    assert pg_workers.section(results)[-1] == "No run is recorded yet."
    pg_workers.record(PASSED, results)
    pg_workers.record(FAILED, results)
    assert pg_workers.load(results) == [PASSED, FAILED]
    lines = pg_workers.section(results)
    assert lines[0] == f"## {pg_workers.TITLE}"
    (passed,) = [line for line in lines if "1075822918" in line]
    assert passed.startswith(f"| 2026-12-07 15:30 (at b83f408) | `{PASSED['command']}` |")
    assert "| every invariant kept | 5 (3) | 4 (2) | 52 | 697 | 3.3 s / 3.7 s | 4.4 s |" in passed
    (failed,) = [line for line in lines if "888739097 |" in line]
    assert "**failed**: SOAK_SEED=888739097 SOAK_PG_KILLS=5 SOAK_PG_PAUSES=4: a \\| b" in failed
    assert failed.endswith("| 5 (5) | 4 (1) | — | — | — / — | — |")
    assert lines[-1] == "1 of these 2 runs kept every invariant."


def test_the_results_file_keeps_the_newest_runs(tmp_path: Path) -> None:
    results = tmp_path / "pg_workers.json"
    for seed in range(pg_workers.KEPT + 3):
        pg_workers.record({**PASSED, "seed": seed}, results)
    assert [run["seed"] for run in pg_workers.load(results)] == list(range(3, pg_workers.KEPT + 3))


def test_the_benchmarks_document_carries_the_section(tmp_path: Path) -> None:
    results = tmp_path / "pg_workers.json"
    pg_workers.record(PASSED, results)
    text = render([], Config(workdir=tmp_path), "python -m bench", "", 1.0, [], results)
    assert f"\n## {pg_workers.TITLE}\n" in text
    assert f"| {pg_workers.TITLE} | every invariant kept (harness run apart, below) " in text
    assert "| 1 of 1 recorded runs kept it |" in text
    assert "1075822918" in text


def test_refresh_replaces_only_the_row_and_the_section(tmp_path: Path) -> None:
    empty = tmp_path / "none.json"
    text = render([], Config(workdir=tmp_path), "python -m bench", "", 1.0, [], empty)
    text = text.replace("## Closing note", "## Closing note\n\nmeasured figures stay")
    results = tmp_path / "pg_workers.json"
    pg_workers.record(PASSED, results)
    refreshed = pg_workers.refresh(text, results)
    assert "No run is recorded yet." in text
    assert "No run is recorded yet." not in refreshed
    assert "| 1 of 1 recorded runs kept it |" in refreshed
    assert "no run recorded" not in refreshed
    assert "1075822918" in refreshed
    assert "## Closing note\n\nmeasured figures stay" in refreshed
    assert refreshed.count(f"## {pg_workers.TITLE}") == 1
    before = text.split(f"## {pg_workers.TITLE}")[0]
    row_before, row_after = pg_workers.summary_row(empty), pg_workers.summary_row(results)
    assert refreshed.startswith(before.replace(row_before, row_after))
    assert pg_workers.refresh(refreshed, results) == refreshed


def test_refresh_refuses_a_document_without_the_section(tmp_path: Path) -> None:
    with pytest.raises(pg_workers.NoSection):
        pg_workers.refresh("# Benchmarks\n\nnothing here\n", tmp_path / "pg_workers.json")
