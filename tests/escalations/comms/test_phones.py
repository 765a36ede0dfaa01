"""Phone numbers as a phone system and a helpdesk write them."""

from __future__ import annotations

import pytest

from escalations.comms.phones import digits, same_number


def test_digits_drop_formatting_and_prefixes() -> None:
    assert digits("+353 (1) 555-0101") == "35315550101"
    assert digits("00353 1 555 0101") == "35315550101"
    assert digits("01 555 0101") == "15550101"
    assert digits("") == ""


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("+353 1 555 0101", "35315550101", True),
        ("+353 1 555 0101", "00353 1 555 0101", True),
        ("+353 1 555 0101", "01 555 0101", True),  # national, trunk 0 dropped
        ("+353 1 555 0101", "+353 1 555 0102", False),
        ("+353 1 555 0101", "0101", False),  # too short to say
        ("+44 20 5550 0303", "+353 20 5550 0303", False),  # another country code
        ("", "", False),
    ],
)
def test_same_number(a: str, b: str, same: bool) -> None:
    assert same_number(a, b) is same
