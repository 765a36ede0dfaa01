"""The section of ``docs/benchmarks.md`` on two workers on PostgreSQL under kills and pauses
(issue 19). ``python -m bench`` does not run that harness (``tests/reliability/
test_pg_workers.py``, opt-in with ``SOAK_PG=1``, about 85 s): each run of it records its
figures, or its failure and seed, in ``bench/results/pg_workers.json`` (``record``), and the
doc writer renders the runs kept there (``section``), each with its date and command."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "pg_workers.json"
TITLE = "Two workers on PostgreSQL under kills and pauses"
KEPT = 20
"""The newest runs kept in the results file (older ones drop off)."""


def load(path: Path = RESULTS) -> list[dict[str, Any]]:
    """The runs recorded in ``path``, oldest first; none when it does not exist."""
    if not path.exists():
        return []
    runs = json.loads(path.read_text(encoding="utf-8")).get("runs", [])
    return [run for run in runs if isinstance(run, dict)]


def record(run: Mapping[str, Any], path: Path = RESULTS) -> None:
    """Add one run (its ``date``, ``command``, ``seed``, ``outcome`` and figures) to ``path``,
    keeping the newest ``KEPT``."""
    runs = [*load(path), dict(run)][-KEPT:]
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(run, sort_keys=True, ensure_ascii=False) for run in runs]
    text = '{"runs": [\n' + ",\n".join(lines) + "\n]}\n"  # one line a run: small diffs
    temp = path.with_suffix(".tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)


def _count(run: Mapping[str, Any], total: str, of_leader: str) -> str:
    if run.get(total) is None:
        return "—"
    return f"{run[total]} ({run.get(of_leader, '?')})"


def _seconds(value: object) -> str:
    return "—" if value is None else f"{float(str(value)):.1f} s"


def _row(run: Mapping[str, Any]) -> str:
    failed = run.get("outcome") != "passed"
    cells = [
        f"{run.get('date', '?')} (at {run.get('commit', '?')})",
        f"`{run.get('command', '?')}`",
        str(run.get("seed", "?")),
        f"**failed**: {run.get('failure', 'no message')}" if failed else "every invariant kept",
        _count(run, "kills", "leader_kills"),
        _count(run, "pauses", "leader_pauses"),
        str(run.get("escalations", "—")),
        str(run.get("copies", "—")),
        f"{_seconds(run.get('failover_median'))} / {_seconds(run.get('failover_max'))}",
        _seconds(run.get("longest_write_lock_wait_seconds")),
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def section(path: Path = RESULTS) -> list[str]:
    """The lines of the section, from the runs recorded in ``path``."""
    runs = load(path)
    out = [
        f"## {TITLE}",
        "",
        "Not measured by `python -m bench`: these are the runs of the two-worker harness "
        "(`tests/reliability/test_pg_workers.py`: two real `escalations run` processes on one "
        "PostgreSQL database, one of them `SIGKILL`ed or `SIGSTOP`ped at random moments while "
        "the traffic generator writes), as each recorded itself in "
        f"`bench/results/pg_workers.json` (the newest {KEPT} are kept), failed runs included. "
        "Each row states the date, the commit (the tree may have held changes not "
        "committed yet) and the command it came from; `SOAK_SEED=<seed>` replays the "
        "traffic and the choice of moments. Kills and pauses count those of the poll's "
        "leader in brackets; the fail-over runs from the `SIGKILL` of the leader to the end of "
        "the first successful poll run as leader after it; the lock wait is the longest the "
        "other worker waited for the store's write lock during a pause. What the figures "
        "mean, and the runs before this file existed: `docs/postgresql.md`.",
        "",
    ]
    if not runs:
        return [*out, "No run is recorded yet."]
    out += [
        "| date (UTC), commit | command | seed | outcome | kills (leader) | pauses (leader) "
        "| escalations | copies | fail-over median / max | longest lock wait |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    out += [_row(run) for run in runs]
    passed = [r for r in runs if r.get("outcome") == "passed"]
    out += [
        "",
        f"{len(passed)} of these {len(runs)} runs kept every invariant.",
    ]
    return out


def summary_row(path: Path = RESULTS) -> str:
    """The section's row of the summary table."""
    runs = load(path)
    passed = sum(r.get("outcome") == "passed" for r in runs)
    verdict = f"{passed} of {len(runs)} recorded runs kept it" if runs else "no run recorded"
    return f"| {TITLE} | every invariant kept (harness run apart, below) | {verdict} |"


class NoSection(ValueError):
    """The document has no summary row or no section of this harness to replace."""


def refresh(text: str, path: Path = RESULTS) -> str:
    """``text`` (a ``docs/benchmarks.md`` written by ``python -m bench``) with this harness's
    summary row and section rendered again from ``path``, every measured figure left as it
    was: the harness runs apart from the benchmarks, so its runs need not wait for the next
    full run (about 100 minutes) to reach the page."""
    lines = text.split("\n")
    row = f"| {TITLE} |"
    rows = [i for i, line in enumerate(lines) if line.startswith(row)]
    heading = f"## {TITLE}"
    if len(rows) != 1 or lines.count(heading) != 1:
        raise NoSection(f"no single summary row and section '{heading}' to replace")
    lines[rows[0]] = summary_row(path)
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = lines[end:]
    return "\n".join([*lines[:start], *section(path), *([""] if tail else []), *tail])
