"""systemd ``EnvironmentFile=`` syntax, read the way systemd itself reads it, so that
``escalations --env-file F`` sees the values a unit with ``EnvironmentFile=F`` would pass.

The rules are those of systemd.exec(5); the corner cases follow systemd's own parser
(``parse_env_file_internal``) as shipped with Debian 12 (systemd 252):

- one ``NAME=value`` per line; blank lines, and lines whose first non-blank character is
  ``#`` or ``;``, are comments. In a comment a backslash escapes the next character, so a
  comment ending in a backslash also swallows the next line (systemd 254 stopped doing that);
- a line with no ``=``, or whose name is not a valid variable name (``export FOO=1``), is
  skipped by systemd: it is returned in ``EnvFile.ignored`` for the caller to judge;
- space, tab and carriage return around the name and an unquoted value are dropped, interior
  whitespace is kept; a carriage return ends a line as a newline does (CRLF files read fine);
- unquoted value: backslash-newline continues the line (the newline is dropped), a backslash
  before any other character keeps that character (``\\\\`` is ``\\``), and quotes after the
  first non-blank character are ordinary characters;
- ``'single'``: verbatim, may span lines, no escapes;
- ``"double"``: may span lines; a backslash before one of ``" \\ ` $`` keeps that character,
  backslash-newline continues the line, a backslash before anything else is kept with it;
- quoted and unquoted pieces next to each other join (``"a"b`` is ``ab``); whitespace outside
  the quotes is dropped;
- the same name again: the later line wins.

Two things systemd accepts silently are errors here (``EnvFileError``), because the setting
they hide would quietly keep its default: a quote still open at the end of the file (systemd
takes the rest of the file as the value) and a NUL character (systemd stops reading there).
Nothing here echoes the text of a line: it may be a secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import Literal

_NEWLINE = "\n\r"  # systemd's NEWLINE: a lone CR ends a line too
_BLANK = " \t\n\r"
_INLINE_BLANK = " \t"
_COMMENT = "#;"
_DOUBLE_QUOTE_ESCAPES = '"\\`$'
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

IgnoredReason = Literal["no '='", "invalid name"]


@dataclass(frozen=True, slots=True)
class Assignment:
    """One ``NAME=value``; ``line`` (1-based) is the line its name starts on."""

    name: str
    value: str
    line: int


@dataclass(frozen=True, slots=True)
class IgnoredLine:
    """A line systemd skips. ``text`` is the line before its ``=`` (all of it when there is
    none), blanks around it dropped: it may be a pasted secret, so never show it."""

    line: int
    text: str
    reason: IgnoredReason


@dataclass(frozen=True, slots=True)
class EnvFile:
    """What a file holds: every assignment in file order, and the lines systemd skips."""

    assignments: tuple[Assignment, ...]
    ignored: tuple[IgnoredLine, ...]

    def variables(self) -> dict[str, Assignment]:
        """The environment the file gives: one assignment per name, the last one winning."""
        return {a.name: a for a in self.assignments}


class EnvFileError(ValueError):
    """A file that cannot be read as systemd would without losing settings silently.

    ``name`` is the variable the problem is in, when its name is a valid one."""

    def __init__(self, line: int, reason: str, name: str | None = None) -> None:
        self.line = line
        self.reason = reason
        self.name = name
        super().__init__(f"line {line}: {name}: {reason}" if name else f"line {line}: {reason}")


def is_variable_name(text: str) -> bool:
    """A name systemd passes on (``[A-Za-z_][A-Za-z0-9_]*``); it drops any other."""
    return _NAME.fullmatch(text) is not None


def parse_env_file(text: str) -> EnvFile:
    """Parse the text of an env file (already decoded from UTF-8).

    Raises:
        EnvFileError: a NUL character, or a quote that is never closed.
    """
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise EnvFileError(line, "holds a NUL character (systemd stops reading the file there)")
    parser = _Parser()
    for char in text:
        parser.feed(char)
    return parser.finish()


class _State(Enum):
    PRE_KEY = auto()
    KEY = auto()
    PRE_VALUE = auto()
    VALUE = auto()
    VALUE_ESCAPE = auto()
    SINGLE_QUOTE = auto()
    DOUBLE_QUOTE = auto()
    DOUBLE_QUOTE_ESCAPE = auto()
    COMMENT = auto()
    COMMENT_ESCAPE = auto()


_QUOTES = {_State.SINGLE_QUOTE: "'", _State.DOUBLE_QUOTE: '"', _State.DOUBLE_QUOTE_ESCAPE: '"'}


class _Parser:
    """One character at a time, one method per state, as systemd's state machine runs."""

    def __init__(self) -> None:
        self.state = _State.PRE_KEY
        self.line = 1
        self.key_line = 1
        self.quote_line = 1
        self.key: list[str] = []
        self.value: list[str] = []
        self.keep = 0  # value[keep:] is unquoted trailing blank, dropped at the end
        self.assignments: list[Assignment] = []
        self.ignored: list[IgnoredLine] = []
        self.step: dict[_State, Callable[[str], None]] = {
            _State.PRE_KEY: self._pre_key,
            _State.KEY: self._key,
            _State.PRE_VALUE: self._pre_value,
            _State.VALUE: self._value,
            _State.VALUE_ESCAPE: self._value_escape,
            _State.SINGLE_QUOTE: self._single_quote,
            _State.DOUBLE_QUOTE: self._double_quote,
            _State.DOUBLE_QUOTE_ESCAPE: self._double_quote_escape,
            _State.COMMENT: self._comment,
            _State.COMMENT_ESCAPE: self._comment_escape,
        }

    def feed(self, char: str) -> None:
        self.step[self.state](char)
        if char == "\n":
            self.line += 1

    def finish(self) -> EnvFile:
        if self.state in _QUOTES:
            self._unterminated(_QUOTES[self.state])
        if self.state is _State.KEY:
            self._ignore("no '='")
        elif self.state in (_State.PRE_VALUE, _State.VALUE, _State.VALUE_ESCAPE):
            self._push()
        return EnvFile(tuple(self.assignments), tuple(self.ignored))

    # -- the states ---------------------------------------------------------------------------

    def _pre_key(self, char: str) -> None:
        if char in _COMMENT:
            self.state = _State.COMMENT
        elif char not in _BLANK:
            self.key, self.key_line = [char], self.line
            self.state = _State.KEY

    def _key(self, char: str) -> None:
        if char in _NEWLINE:
            self._ignore("no '='")
            self.state = _State.PRE_KEY
        elif char == "=":
            self.value, self.keep = [], 0
            self.state = _State.PRE_VALUE
        else:
            self.key.append(char)

    def _pre_value(self, char: str) -> None:
        if char in _NEWLINE:
            self._push()
            self.state = _State.PRE_KEY
        elif char == "'":
            self.quote_line = self.line
            self.state = _State.SINGLE_QUOTE
        elif char == '"':
            self.quote_line = self.line
            self.state = _State.DOUBLE_QUOTE
        elif char == "\\":
            self.state = _State.VALUE_ESCAPE
        elif char not in _BLANK:
            self._keep(char)
            self.state = _State.VALUE

    def _value(self, char: str) -> None:
        if char in _NEWLINE:
            self._push()
            self.state = _State.PRE_KEY
        elif char == "\\":
            self.keep = len(self.value)  # blanks before an escape are interior, not trailing
            self.state = _State.VALUE_ESCAPE
        elif char in _INLINE_BLANK:
            self.value.append(char)
        else:
            self._keep(char)

    def _value_escape(self, char: str) -> None:
        if char not in _NEWLINE:  # backslash-newline: a continuation, the newline dropped
            self._keep(char)
        self.state = _State.VALUE

    def _single_quote(self, char: str) -> None:
        if char == "'":
            self.keep = len(self.value)
            self.state = _State.PRE_VALUE
        else:
            self.value.append(char)

    def _double_quote(self, char: str) -> None:
        if char == '"':
            self.keep = len(self.value)
            self.state = _State.PRE_VALUE
        elif char == "\\":
            self.state = _State.DOUBLE_QUOTE_ESCAPE
        else:
            self.value.append(char)

    def _double_quote_escape(self, char: str) -> None:
        if char in _DOUBLE_QUOTE_ESCAPES:
            self.value.append(char)
        elif char != "\n":  # as in a shell: the backslash stays before other characters
            self.value += ["\\", char]
        self.state = _State.DOUBLE_QUOTE

    def _comment(self, char: str) -> None:
        if char == "\\":
            self.state = _State.COMMENT_ESCAPE
        elif char in _NEWLINE:
            self.state = _State.PRE_KEY

    def _comment_escape(self, char: str) -> None:
        self.state = _State.COMMENT  # an escaped newline too: the comment goes on

    # -- results ------------------------------------------------------------------------------

    def _keep(self, char: str) -> None:
        self.value.append(char)
        self.keep = len(self.value)

    def _name(self) -> str:
        return "".join(self.key).strip(_INLINE_BLANK)

    def _push(self) -> None:
        name = self._name()
        if is_variable_name(name):
            value = "".join(self.value[: self.keep])
            self.assignments.append(Assignment(name, value, self.key_line))
        else:
            self.ignored.append(IgnoredLine(self.key_line, name, "invalid name"))

    def _ignore(self, reason: IgnoredReason) -> None:
        self.ignored.append(IgnoredLine(self.key_line, self._name(), reason))

    def _unterminated(self, quote: str) -> None:
        name = self._name()
        where = "" if self.quote_line == self.key_line else f" (opened on line {self.quote_line})"
        raise EnvFileError(
            self.key_line,
            f"unterminated {quote} quote{where}: the value would run to the end of the file",
            name if is_variable_name(name) else None,
        )
