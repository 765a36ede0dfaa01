"""The docs name real things: every repository path written in backticks in ``README.md`` and
``docs/*.md`` exists, and every ``file.py::test_name`` they cite is a test in that file. A doc
that names a missing module or test is a defect (the project's standards)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
TOP = ("connector/", "escalations/", "jobs/", "sandbox/", "tests/", "mappings/", "docs/",
       "bench/", "scripts/", ".ci/")  # fmt: skip
"""Where a backticked path is one of ours (others are installed paths, URLs, placeholders)."""
CITED = re.compile(r"`([^`\s]+)`")


def cited_paths(text: str) -> list[str]:
    return [m for m in CITED.findall(text) if m.startswith(TOP) and "<" not in m]


def missing(doc: Path) -> list[str]:
    problems = []
    for cited in cited_paths(doc.read_text(encoding="utf-8")):
        path, _, test = cited.partition("::")
        target = ROOT / path
        if not target.exists():
            problems.append(f"{doc.name}: {path} does not exist")
        elif test:
            tree = ast.parse(target.read_text(encoding="utf-8"))
            names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            if test not in names:
                problems.append(f"{doc.name}: {path} has no {test}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    assert missing(doc) == []


def test_the_architecture_doc_names_the_modules_it_is_about() -> None:
    named = cited_paths((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))
    assert len([p for p in named if p.endswith(".py")]) >= 30


def test_the_check_reports_a_missing_module_and_a_missing_test(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "`jobs/sync/gone.py`, `jobs/worker.py`, `tests/test_docs.py::test_nothing_here`,"
        " `tests/test_docs.py::test_every_path_a_doc_names_exists`, `<STATE_DIR>/x`,"
        " `../shared/DESIGN.md`",
        encoding="utf-8",
    )
    assert missing(doc) == [
        "doc.md: jobs/sync/gone.py does not exist",
        "doc.md: tests/test_docs.py has no test_nothing_here",
    ]


def test_every_image_a_doc_shows_is_a_png_in_the_repository() -> None:
    shown = []
    for doc in (ROOT / "docs").glob("*.md"):
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", doc.read_text(encoding="utf-8")):
            image = (doc.parent / target).resolve()
            assert image.is_file(), f"{doc.name}: {target} does not exist"
            assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{target} is not a PNG"
            shown.append(target)
    assert "img/hard-copy-page-1.png" in shown  # the hard copy, as issue 12 asks
