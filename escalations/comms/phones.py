"""Phone numbers compared as a phone system and a helpdesk write them: "+353 1 555 0101",
"00353 1 555 0101", "01 555 0101" and "35315550101" are one number."""

from __future__ import annotations

import re

MIN_SHARED_DIGITS = 7
"""A national number matches an international one only on at least this many digits."""


def digits(number: str) -> str:
    """The number's digits, without an international ``00`` or a national trunk ``0``."""
    only = re.sub(r"\D", "", number or "")
    if only.startswith("00"):
        return only[2:]
    return only.lstrip("0")


def same_number(a: str, b: str) -> bool:
    """Whether two written numbers are the same line: equal digits, or one is the other
    without its country code (a national number, its trunk 0 dropped)."""
    x, y = digits(a), digits(b)
    if not x or not y:
        return False
    if x == y:
        return True
    short, long = sorted((x, y), key=len)
    return len(short) >= MIN_SHARED_DIGITS and long.endswith(short) and len(long) - len(short) <= 3
