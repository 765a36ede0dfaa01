"""A customer's attachment file name made safe to write anywhere: re-uploaded onto an
escalation copy now, written to the archive directory later (issue 10 #9).

The name comes from the customer's mail client and is attacker-controlled: ``../../etc/passwd``,
``C:\\temp\\x.txt``, ``CON.txt``, NUL bytes, 300-byte names and empty names all arrive. An empty
name is worse than ugly: the helpdesk refuses the upload (422) and the whole copy with it.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["DEFAULT_FALLBACK", "MAX_BYTES", "safe_filename"]

DEFAULT_FALLBACK = "attachment"
MAX_BYTES = 255
"""The longest file name (in UTF-8 bytes) ext4, NTFS, APFS and the helpdesk's store all take."""
MAX_EXTENSION_BYTES = 32
"""An "extension" longer than this (its dot included) is not one: it is cut like the stem."""

_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0 (NUL included), DEL, C1
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi controls: "invoice\u202efdp.exe"
    "\ud800-\udfff]"  # lone surrogates, which have no UTF-8 form
)
_SEPARATORS = re.compile(r"[/\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_FORBIDDEN = re.compile(r'[<>:"|?*]')
"""What Windows forbids in a name besides the separators and control characters."""
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³")}
)
"""Windows device names: ``CON``, ``con.txt`` and ``Con .tar.gz`` all open the console."""


def safe_filename(name: str, *, fallback: str = DEFAULT_FALLBACK) -> str:
    """``name`` as a plain file name that is safe on every file system and to the helpdesk.

    In this order:

    1. control characters go: C0 (NUL included), DEL, C1, the bidi controls that make
       ``exe.pdf`` look like ``pdf.exe``, and lone surrogates;
    2. the text is normalised to Unicode NFC;
    3. only the basename is kept: what follows the last ``/`` or ``\\`` that has anything after
       it, without a drive letter (``C:``);
    4. the characters Windows forbids, ``< > : " | ? *``, become ``_``;
    5. leading and trailing spaces and dots go (Windows drops trailing ones itself; leading
       ones hide the file or make it ``.``/``..``);
    6. a name left empty (``""``, ``.``, ``..``, ``/``) becomes ``fallback``, itself made safe
       (``"attachment"`` if nothing of it is left either);
    7. a Windows device name (``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM0``–``COM9``,
       ``LPT0``–``LPT9``, ``COM¹²³``, ``LPT¹²³``, ``CONIN$``, ``CONOUT$``: the part before
       the first dot, any case, trailing spaces ignored) gets a ``_`` in front: ``_nul.pdf``;
    8. a name over 255 bytes of UTF-8 is cut in its stem, never inside a character, and keeps
       its extension (the last dot and what follows, if at most 32 bytes; a longer one is cut
       as part of the stem).

    The result is never empty and the function is idempotent:
    ``safe_filename(safe_filename(x)) == safe_filename(x)``. A name that is already safe
    (``report-2026.pdf``, ``Übersicht.xlsx``) comes back unchanged.
    """
    text = unicodedata.normalize("NFC", _INVISIBLE.sub("", name))
    segments = [s for s in _SEPARATORS.split(text) if s]
    text = _DRIVE.sub("", segments[-1] if segments else "")
    text = _FORBIDDEN.sub("_", text).strip(" .")
    if not text:
        return DEFAULT_FALLBACK if fallback == DEFAULT_FALLBACK else safe_filename(fallback)
    if text.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        text = "_" + text
    return _fit(text)


def _fit(name: str) -> str:
    """``name`` cut to ``MAX_BYTES`` of UTF-8 in its stem, keeping its extension."""
    if len(name.encode("utf-8")) <= MAX_BYTES:
        return name
    dot = name.rfind(".")
    extension = name[dot:] if dot > 0 else ""
    if len(extension.encode("utf-8")) > MAX_EXTENSION_BYTES:
        extension = ""
    stem = name[: len(name) - len(extension)]
    room = MAX_BYTES - len(extension.encode("utf-8"))
    kept = stem.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return kept + extension if extension else kept.rstrip(" .")
