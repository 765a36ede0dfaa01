"""What a pass imports: the worker's modules load without what a pass that files no hard copy
never uses (the PDF library, the sandbox), so an idle ``escalations run --once`` does not pay
for them (issue 15: about 0.1 s of CPU for the PDF library alone)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASS_MODULES = ("escalations.app.commands", "escalations.app.wiring", "jobs.worker")
NOT_FOR_A_PASS = ("fpdf", "escalations.archive.pdf", "sandbox")


def test_the_worker_loads_without_the_pdf_library_or_the_sandbox() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in PASS_MODULES)
        + f"print(' '.join(m for m in {NOT_FOR_A_PASS!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == []
