"""``safe_filename`` (issue 10 #9): the hostile names seen on escalation copies, each with what
it becomes, and properties over any text at all."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from escalations.filenames import safe_filename

HOSTILE = [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    ("/absolute.txt", "absolute.txt"),
    ("C:\\temp\\x.txt", "x.txt"),
    ("C:x.txt", "x.txt"),
    ("report.pdf/", "report.pdf"),
    ("in\x00voice.pdf", "invoice.pdf"),
    ("tab\there\r\n.txt", "tabhere.txt"),
    ("del\x7fc1\x85.txt", "delc1.txt"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"),
    ("CON.txt", "_CON.txt"),
    ("aux", "_aux"),
    ("nul.pdf", "_nul.pdf"),
    ("Prn.tar.gz", "_Prn.tar.gz"),
    ("com1", "_com1"),
    ("LPT9.log", "_LPT9.log"),
    ("COM¹.txt", "_COM¹.txt"),
    ("con .txt", "_con .txt"),
    ("console.txt", "console.txt"),
    ("<img src=x onerror=alert(1)>.pdf", "_img src=x onerror=alert(1)_.pdf"),
    ('what?"*|:.txt', "what_____.txt"),
    ("trailing. . .", "trailing"),
    ("  spaced.txt  ", "spaced.txt"),
    (".hidden", "hidden"),
    (".", "attachment"),
    ("..", "attachment"),
    ("", "attachment"),
    ("   ", "attachment"),
    ("\x00", "attachment"),
    ("../..", "attachment"),
    ("C:", "attachment"),
    ("x" * 300, "x" * 255),
    ("x" * 300 + ".pdf", "x" * 251 + ".pdf"),
    ("ü" * 200 + ".pdf", "ü" * 125 + ".pdf"),  # 2 bytes each: never half a character
    ("x" * 250 + "." + "y" * 40, "x" * 250 + "." + "y" * 4),  # no extension that long
    ("Cafe\u0301.txt", "Café.txt"),  # NFC
]


@pytest.mark.parametrize(("name", "expected"), HOSTILE, ids=[repr(n)[:40] for n, _ in HOSTILE])
def test_a_hostile_name_becomes_a_safe_one(name: str, expected: str) -> None:
    assert safe_filename(name) == expected
    assert safe_filename(expected) == expected


@pytest.mark.parametrize(
    "name", ["report-2026.pdf", "Übersicht.xlsx", "scan 2026-01-05 (2).jpeg", "日本語.txt"]
)
def test_a_safe_name_is_left_alone(name: str) -> None:
    assert safe_filename(name) == name


def test_the_fallback_is_the_callers_and_made_safe_too() -> None:
    assert safe_filename("..", fallback="body.html") == "body.html"
    assert safe_filename("", fallback="../nul") == "_nul"
    assert safe_filename("", fallback="..") == "attachment"


RESERVED = re.compile(r"(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|(COM|LPT)[0-9¹²³]) *", re.IGNORECASE)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def assert_safe(result: str) -> None:
    assert result
    assert len(result.encode("utf-8")) <= 255
    assert not re.search(r'[/\\<>:"|?*]', result)
    assert not CONTROL.search(result)
    assert result not in (".", "..")
    assert result == result.strip(" .")
    assert not RESERVED.fullmatch(result.split(".", 1)[0])


HOSTILE_PARTS = st.sampled_from(
    ["/", "\\", ".", "..", " ", "\x00", "\x1f", "\x7f", "\x9f", "C:", ":", "<", "*", "CON",
     "nul", "Lpt1", "COM³", "\u202e", "\u0301", "ü", "€", "😀", ".pdf", ".tar.gz"]
)  # fmt: skip
HOSTILE_NAMES = st.lists(st.one_of(HOSTILE_PARTS, st.text(max_size=8)), max_size=12).map("".join)
LONG_NAMES = st.tuples(
    st.text(min_size=100, max_size=400), st.sampled_from(["", ".pdf", ".ü" * 20, "." + "é" * 15])
).map("".join)


@given(st.one_of(st.text(), HOSTILE_NAMES, LONG_NAMES))
@example("\ud800.txt")  # a lone surrogate, as a JSON "\ud800" escape decodes
def test_any_name_comes_out_safe_and_stays_so(name: str) -> None:
    result = safe_filename(name)
    assert_safe(result)
    assert safe_filename(result) == result


@given(
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cc", "Cs", "Cf"), blacklist_characters='/\\<>:"|?*. '
        ),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from(["", ".pdf", ".xlsx", ".tar.gz"]),
)
def test_a_name_that_is_already_safe_is_unchanged(stem: str, extension: str) -> None:
    name = f"{stem}{extension}"
    assume(unicodedata.is_normalized("NFC", name))
    assume(not RESERVED.fullmatch(stem))
    assert safe_filename(name) == name
