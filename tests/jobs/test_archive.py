"""The hard copy (issue 12 #4), end to end: a confirmed escalation is archived as a directory
with the PDF, the record, the attachments and a manifest; the PDF's text (read with
poppler's ``pdftotext``) holds every copied email's subject and the RFO; ``archive verify``
passes, and names the file after one byte of it is changed."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from escalations.app.cli import main
from escalations.archive import directory
from escalations.models import State
from tests.jobs.conftest import ALICE, World

TITLE = "Broadband down since Monday"
SUBJECTS = ("Still down — Müller’s café line", "Связь пропала снова", "Photo of the router")
RFO = "Fibre cut at the Dún Laoghaire exchange; spliced 14:05."

needs_pdftotext = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) is not installed"
)


def _confirmed(world: World) -> dict[str, Any]:
    original = world.ticket_by_title(TITLE)
    world.flag(original)
    world.sync()
    esc = world.the_escalation_ticket()
    world.sandbox.seed_customer_email(
        original, "Nothing works since this morning.", subject=SUBJECTS[0]
    )
    world.sandbox.seed_customer_email(original, "Опять нет интернета.", subject=SUBJECTS[1])
    world.sandbox.seed_customer_email(
        original,
        "See the photo.",
        subject=SUBJECTS[2],
        attachments=[("../../router.png", "image/png", b"\x89PNG fake image bytes")],
    )
    world.sync()
    world.sync()
    world.sandbox.agent_article(
        original, ALICE, "Called Sean back: engineer booked.", type="phone", internal=False
    )
    world.sandbox.agent_update(esc["id"], ALICE, escalation_level="2")
    world.sync()
    world.sandbox.agent_update(esc["id"], ALICE, escalation_rfo=RFO, state="closed")
    world.sync()
    world.sandbox.add_tag(esc["id"], "escalation-confirmed", login=ALICE)
    world.sync()
    return esc


def _archive_dir(world: World) -> Path:
    (copy,) = world.store.archives()
    return Path(copy.path)


@needs_pdftotext
def test_a_confirmed_escalation_is_archived_complete(world: World) -> None:
    _confirmed(world)
    (esc,) = world.store.escalations_in(State.ARCHIVED)
    path = _archive_dir(world)
    assert path.parent == world.ctx.settings.archive_path
    names = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    assert names[-3:] == ["escalation.pdf", "manifest.json", "record.json"]
    (attachment,) = [n for n in names if n.startswith("attachments/")]
    assert attachment.endswith("-router.png")  # no path from the customer's name survives
    for p in path.rglob("*"):
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path / "escalation.pdf"), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for subject in SUBJECTS:
        assert subject in text, subject
    assert "Dún Laoghaire" in " ".join(text.split())  # the RFO, accents kept
    assert "Опять нет интернета." in text
    record = json.loads((path / "record.json").read_text(encoding="utf-8"))
    assert (record["schema"], record["version"]) == ("helpdesk-escalations/archive-record", 1)
    assert record["escalation"]["rfo"] == RFO
    assert record["escalation"]["key"] == esc.key
    assert [lv["to_level"] for lv in record["levels"]] == [2]
    calls = [a for a in record["articles"] if a["kind"] == "phone"]
    assert [a["ticket"] for a in calls] == [record["escalation"]["original_ticket"]["number"]]
    assert "Called Sean back" in text  # a call logged on the original is in the hard copy
    assert directory.verify(path) == []


def test_verify_names_the_file_one_byte_of_which_changed(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _confirmed(world)
    path = _archive_dir(world)
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(world.ctx.settings.state_dir))
    assert main(["archive", "verify"]) == 0
    assert f"ok {path}" in capsys.readouterr().out
    record = path / "record.json"
    data = bytearray(record.read_bytes())
    data[10] ^= 0x01
    record.chmod(0o600)
    record.write_bytes(bytes(data))
    assert main(["archive", "verify"]) == 1
    err = capsys.readouterr().err
    assert f"damaged: {record}: checksum differs from the manifest" in err
    assert str(path / "escalation.pdf") not in err


def test_archive_show_lists_the_files(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _confirmed(world)
    (esc,) = world.store.escalations_in(State.ARCHIVED)
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(world.ctx.settings.state_dir))
    assert main(["archive", "show", esc.key]) == 0
    out = capsys.readouterr().out
    assert str(_archive_dir(world)) in out
    assert "escalation.pdf" in out
    assert main(["archive", "show", "zammad:ticket:999:1"]) == 1
    assert "no such escalation" in capsys.readouterr().err


def test_a_crash_after_the_directory_is_in_place_records_it_once(world: World) -> None:
    """The directory renamed into place, then the worker died before the commit: the next
    pass finds the same directory complete and records it; nothing is written twice."""
    real = world.ctx.lifecycle.archived
    calls: list[int] = []

    def dies(*args: Any, **kwargs: Any) -> bool:
        calls.append(1)
        raise KeyboardInterrupt  # as good as a kill for this pass: the commit never happens

    world.ctx.lifecycle.archived = dies  # type: ignore[method-assign]
    world.twice = False
    with pytest.raises(KeyboardInterrupt):
        _confirmed(world)
    world.ctx.lifecycle.archived = real  # type: ignore[method-assign]
    root = world.ctx.settings.archive_path
    (placed,) = [p for p in root.iterdir() if not p.name.startswith(directory.INCOMING)]
    pdf_before = (placed / "escalation.pdf").stat().st_mtime_ns
    world.sync()
    assert calls == [1]
    assert _archive_dir(world) == placed
    assert (placed / "escalation.pdf").stat().st_mtime_ns == pdf_before  # not rewritten
    assert len(world.store.escalations_in(State.ARCHIVED)) == 1


def test_a_half_written_directory_never_counts_and_is_cleared(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    stale = root / f"{directory.INCOMING}esc-1_20261204T150000Z-abc123"
    stale.mkdir(parents=True)
    (stale / "record.json").write_text("{half")
    written = directory.write(root, "esc-1_20261204T150000Z", {"record.json": b"{}"})
    assert not stale.exists()
    assert directory.verify(written.path) == []
    assert [p.name for p in root.iterdir()] == ["esc-1_20261204T150000Z"]
    with pytest.raises(ValueError, match="outside the archive"):
        directory.write(root, "esc-2", {"../escape.txt": b"x"})
    assert [p.name for p in root.iterdir()] == ["esc-1_20261204T150000Z"]  # nothing left


def test_archive_hold_and_release(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs.retention import HOLDS

    _confirmed(world)
    (esc,) = world.store.escalations_in(State.ARCHIVED)
    monkeypatch.setenv("ESCALATIONS_STATE_DIR", str(world.ctx.settings.state_dir))
    assert main(["archive", "hold", esc.key]) == 0
    assert f"{esc.key}: on legal hold" in capsys.readouterr().out
    assert esc.key in (world.store.get_meta(HOLDS) or {})
    assert main(["archive", "hold", esc.key, "--release"]) == 0
    assert esc.key not in (world.store.get_meta(HOLDS) or {})
    assert main(["archive", "hold", "zammad:ticket:999:1"]) == 1
    assert "no such escalation" in capsys.readouterr().err


def test_what_a_clearing_left_is_swept_and_an_archive_in_place_is_adopted(tmp_path: Path) -> None:
    """A run killed while clearing a temporary directory (renamed ``.clearing-…``, then being
    deleted) leaves nothing for long: the next archive pass sweeps it. An archive already in
    place is adopted when it verifies, and refused when it does not."""
    root = tmp_path / "archive"
    written = directory.write(root, "esc-1_20261204T150000Z", {"record.json": b"{}"})
    left = root / f"{directory.CLEARING}{directory.INCOMING}esc-2_20261204T150000Z-abc123"
    (left / "attachments").mkdir(parents=True)
    (left / "attachments" / "half.png").write_bytes(b"\x89PNG")
    directory.sweep_cleared(root)
    assert [p.name for p in root.iterdir()] == ["esc-1_20261204T150000Z"]
    assert directory.adopt(written.path) == written
    (written.path / "record.json").write_bytes(b"{ }")
    with pytest.raises(directory.ArchiveDamaged, match="record.json: checksum differs"):
        directory.adopt(written.path)
