"""escalations/envfile.py: systemd ``EnvironmentFile=`` syntax, rule by rule (systemd.exec(5),
and systemd 252's parser for the corner cases the man page leaves open)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from escalations.envfile import (
    Assignment,
    EnvFile,
    EnvFileError,
    IgnoredLine,
    is_variable_name,
    parse_env_file,
)


def values(text: str) -> dict[str, str]:
    return {name: a.value for name, a in parse_env_file(text).variables().items()}


def lines(text: str) -> dict[str, int]:
    return {name: a.line for name, a in parse_env_file(text).variables().items()}


def ignored(text: str) -> list[tuple[int, str, str]]:
    return [(i.line, i.text, i.reason) for i in parse_env_file(text).ignored]


# -- comments and blank lines ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# A=1\nB=2\n", {"B": "2"}),
        ("; A=1\nB=2\n", {"B": "2"}),
        ("   # A=1\n\t; A=1\nB=2\n", {"B": "2"}),
        ("\n\n   \n\t\nB=2\n\n", {"B": "2"}),
        ("B=2 # not a comment\n", {"B": "2 # not a comment"}),
        ("B=#2\n", {"B": "#2"}),
    ],
    ids=["hash", "semicolon", "indented", "blank lines", "hash after a value", "hash as value"],
)
def test_comments_and_blank_lines(text: str, expected: dict[str, str]) -> None:
    assert values(text) == expected
    assert ignored(text) == []


def test_a_comment_ending_in_a_backslash_swallows_the_next_line() -> None:
    """systemd 252 (Debian 12) escapes the newline inside a comment; 254 stopped doing so."""
    text = "A=1\n# old setting, disabled \\\nB=2\nC=3\n"
    assert values(text) == {"A": "1", "C": "3"}
    assert lines(text) == {"A": 1, "C": 4}


def test_a_comment_ending_in_an_escaped_backslash_ends_there() -> None:
    assert values("# path C:\\\\\nB=2\n") == {"B": "2"}


# -- lines systemd skips ----------------------------------------------------------------------


def test_a_line_starting_with_equals_has_no_name_and_no_equals() -> None:
    """systemd takes the first character of a line as part of the name, even an ``=``."""
    assert ignored("=1\n") == [(1, "=1", "no '='")]


def test_lines_without_equals_are_returned_with_their_line() -> None:
    text = "A=1\njust-the-token\n\n  ESCALATIONS_POLL  \nB=2\nTAIL"
    assert values(text) == {"A": "1", "B": "2"}
    assert ignored(text) == [
        (2, "just-the-token", "no '='"),
        (4, "ESCALATIONS_POLL", "no '='"),
        (6, "TAIL", "no '='"),
    ]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("export FOO=1\n", "export FOO"),
        ("FOO-BAR=1\n", "FOO-BAR"),
        ("1FOO=1\n", "1FOO"),
        ("FÖÖ=1\n", "FÖÖ"),
        ('"FOO"=1\n', '"FOO"'),
        ("FOO BAR=1\n", "FOO BAR"),
    ],
    ids=["export", "dash", "leading digit", "non-ASCII", "quoted name", "blank inside"],
)
def test_invalid_names_are_returned_with_their_line(text: str, key: str) -> None:
    text = "A=1\n" + text
    assert values(text) == {"A": "1"}
    assert ignored(text) == [(2, key, "invalid name")]


@pytest.mark.parametrize(
    ("name", "valid"),
    [("FOO", True), ("_foo_1", True), ("A", True), ("1A", False), ("A B", False), ("", False)],
)
def test_variable_names(name: str, valid: bool) -> None:
    assert is_variable_name(name) is valid


# -- whitespace -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  A  =  x  \n", "x"),
        ("A=\tx y\t z \t\n", "x y\t z"),
        ("A=x  \r\n", "x"),
        ("A=\n", ""),
        ("A=   \n", ""),
        ("A=x", "x"),
        ("A=x\\ \n", "x "),
        ("A=x \\\n", "x "),
    ],
    ids=[
        "around name and value",
        "interior kept",
        "CRLF",
        "empty",
        "only blanks",
        "no final newline",
        "escaped trailing blank kept",
        "blank before a continuation kept",
    ],
)
def test_whitespace(text: str, expected: str) -> None:
    assert values(text) == {"A": expected}


def test_a_crlf_file_reads_like_an_lf_file() -> None:
    text = "# c\r\nA=1\r\nB='two'\r\n\r\nC=\"3\"\r\n"
    assert values(text) == {"A": "1", "B": "two", "C": "3"}
    assert lines(text) == {"A": 2, "B": 3, "C": 5}


# -- unquoted values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=one\\\ntwo\n", "onetwo"),
        ("A=one \\\n  two\n", "one   two"),
        ("A=a\\\\b\n", "a\\b"),
        ("A=a\\\\\n", "a\\"),
        ("A=a\\xb\n", "axb"),
        ("A=a\\$b\n", "a$b"),
        ('A=a"b c"\n', 'a"b c"'),
        ("A=it's\n", "it's"),
        ("A=x 'y'\n", "x 'y'"),
        ("A=a=b=c\n", "a=b=c"),
        ("A=$HOME\n", "$HOME"),
    ],
    ids=[
        "continuation",
        "continuation keeps the next line's blanks",
        "escaped backslash",
        "escaped backslash at the end",
        "backslash keeps the next character",
        "backslash before $",
        "double quotes after the first character",
        "apostrophe",
        "single quotes after a blank",
        "equals signs",
        "no expansion",
    ],
)
def test_unquoted_values(text: str, expected: str) -> None:
    assert values(text) == {"A": expected}


def test_a_continuation_does_not_start_a_new_assignment() -> None:
    assert values("A=one\\\nB=2\n") == {"A": "oneB=2"}


# -- single quotes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A='x y'\n", "x y"),
        ("A='  padded  '\n", "  padded  "),
        ("A='a\\nb\\\\c\\'\n", "a\\nb\\\\c\\"),
        ("A='$HOME \"q\" `x`'\n", '$HOME "q" `x`'),
        ("A='one\ntwo\n'\n", "one\ntwo\n"),
        ("A='# not a comment'\n", "# not a comment"),
    ],
    ids=["blank inside", "blanks kept", "no escapes", "no expansion", "spans lines", "hash"],
)
def test_single_quoted_values(text: str, expected: str) -> None:
    assert values(text) == {"A": expected}


# -- double quotes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('A="x y"\n', "x y"),
        ('A="say \\"hi\\""\n', 'say "hi"'),
        ('A="a\\\\b"\n', "a\\b"),
        ('A="\\`cmd\\` \\$HOME"\n', "`cmd` $HOME"),
        ('A="a\\nb\\tc"\n', "a\\nb\\tc"),
        ('A="one\\\ntwo"\n', "onetwo"),
        ('A="one\ntwo"\n', "one\ntwo"),
        ('A="it\'s"\n', "it's"),
        ('A="  padded  "\n', "  padded  "),
        ('A="a\rb"\n', "a\rb"),
    ],
    ids=[
        "blank inside",
        "escaped quote",
        "escaped backslash",
        "escaped backquote and dollar",
        "other escapes keep the backslash",
        "continuation",
        "spans lines",
        "apostrophe",
        "blanks kept",
        "carriage return kept",
    ],
)
def test_double_quoted_values(text: str, expected: str) -> None:
    assert values(text) == {"A": expected}


# -- around quotes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('A=   "x"   \n', "x"),
        ("A=  'x'\t\n", "x"),
        ('A="a" "b"\n', "ab"),
        ("A='a'\"b\"c\n", "abc"),
        ('A="a"b c \n', "ab c"),
        ('A=""\n', ""),
        ("A=''\n", ""),
    ],
    ids=[
        "blanks around double quotes",
        "blanks around single quotes",
        "pieces join",
        "mixed pieces",
        "unquoted piece after quotes",
        "empty double",
        "empty single",
    ],
)
def test_whitespace_outside_quotes_is_dropped(text: str, expected: str) -> None:
    assert values(text) == {"A": expected}


@pytest.mark.parametrize("quote", ["'", '"'])
def test_an_unterminated_quote_is_an_error_on_the_line_of_the_name(quote: str) -> None:
    text = f"# x\nB=1\nESCALATIONS_HELPDESK_URL={quote}https://z.example\nESCALATIONS_LOG_LEVEL=DEBUG\n"
    with pytest.raises(EnvFileError) as err:
        parse_env_file(text)
    assert (err.value.line, err.value.name) == (3, "ESCALATIONS_HELPDESK_URL")
    assert err.value.reason == (
        f"unterminated {quote} quote: the value would run to the end of the file"
    )
    assert "z.example" not in str(err.value)


def test_an_unterminated_quote_on_a_later_line_says_where_it_opened() -> None:
    with pytest.raises(EnvFileError) as err:
        parse_env_file('A="one\ntwo" "three\n')
    assert (err.value.line, err.value.name) == (1, "A")
    assert err.value.reason == (
        'unterminated " quote (opened on line 2): the value would run to the end of the file'
    )


def test_an_unterminated_quote_after_an_invalid_name_names_no_name() -> None:
    with pytest.raises(EnvFileError) as err:
        parse_env_file("export A='x\n")
    assert (err.value.line, err.value.name) == (1, None)


def test_an_unterminated_escape_in_double_quotes_is_an_error() -> None:
    with pytest.raises(EnvFileError, match='unterminated " quote'):
        parse_env_file('A="x\\')


def test_a_nul_character_is_an_error_with_its_line() -> None:
    with pytest.raises(EnvFileError) as err:
        parse_env_file("A=1\nB=2\x00\nC=3\n")
    assert err.value.line == 2
    assert "NUL" in err.value.reason


# -- duplicates, line numbers, the result -----------------------------------------------------


def test_a_later_assignment_of_the_same_name_wins() -> None:
    text = "A=1\nB=x\nA=2\n"
    parsed = parse_env_file(text)
    assert values(text) == {"A": "2", "B": "x"}
    assert parsed.variables()["A"] == Assignment("A", "2", 3)
    assert [a.line for a in parsed.assignments] == [1, 2, 3]


def test_each_assignment_has_the_line_its_name_starts_on() -> None:
    text = (
        "# header\n"  # 1
        "\n"  # 2
        "A='one\n"  # 3
        "two'\n"  # 4
        "B=x\\\n"  # 5
        "y\n"  # 6
        '   C="a\n'  # 7
        '"\n'  # 8
        "D=4"  # 9
    )
    assert lines(text) == {"A": 3, "B": 5, "C": 7, "D": 9}
    assert values(text) == {"A": "one\ntwo", "B": "xy", "C": "a\n", "D": "4"}


def test_the_result_is_frozen() -> None:
    parsed = parse_env_file("A=1\nnope\n")
    assert parsed == EnvFile((Assignment("A", "1", 1),), (IgnoredLine(2, "nope", "no '='"),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.assignments[0].value = "2"  # type: ignore[misc]


def test_an_empty_file() -> None:
    assert parse_env_file("") == EnvFile((), ())


def _double_quoted(value: str) -> str:
    return '"' + "".join("\\" + c if c in '"\\`$' else c for c in value) + '"'


@given(st.text(alphabet=st.characters(blacklist_characters="\x00")))
def test_any_value_double_quoted_with_escapes_reads_back(value: str) -> None:
    assert values(f"A={_double_quoted(value)}\nB=1\n") == {"A": value, "B": "1"}


@given(st.text(alphabet=st.characters(blacklist_characters="\x00'")))
def test_any_value_without_an_apostrophe_single_quoted_reads_back(value: str) -> None:
    assert values(f"A='{value}'\nB=1\n") == {"A": value, "B": "1"}
