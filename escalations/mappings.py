"""Load and validate the admin-edited mapping files: the process profile (``process.toml``,
shared by every helpdesk) and the field map of the configured helpdesk (``zammad.toml``).

:func:`load_mappings` reads both files of a mappings directory and either returns a frozen
:class:`Mappings` or raises one :class:`~escalations.errors.MappingError` that lists every
problem it found: TOML syntax errors, validation errors in each file, and checks across the two
files. Each problem names the file (as given), the 1-based line and a dotted key such as
``levels[2].owner``, where ``[n]`` is the 0-based position in the array as written.

Lines of semantic errors come from :class:`KeyLineIndex`, built from the source text, because
``tomllib`` keeps no positions. A key that is missing is reported at the line of its parent
table (or line 1 at the top level).
"""

from __future__ import annotations

import bisect
import inspect
import re
import sys
import tomllib
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from escalations import profile
from escalations.bindings.osticket import field_map as osticket_field_map
from escalations.bindings.zammad import fieldmap as zammad_fieldmap
from escalations.errors import ConfigError, MappingError, MappingProblem
from escalations.profile import (
    ISSUES_CONTEXT_KEY,
    Issue,
    Loc,
    ProcessProfile,
    choices_hint,
    format_loc,
)

ModelT = TypeVar("ModelT", bound=BaseModel)
PROCESS_FILE = "process.toml"
ZAMMAD_FILE = "zammad.toml"
OSTICKET_FILE = "osticket.toml"


@dataclass(frozen=True)
class FieldMapSpec:
    """One helpdesk's field map: its file, its model and its cross-field checks."""

    file: str
    model: type[BaseModel]
    consistency: Callable[..., list[Issue]]


FIELD_MAPS: dict[str, FieldMapSpec] = {
    "zammad": FieldMapSpec(
        ZAMMAD_FILE, zammad_fieldmap.ZammadFieldMap, zammad_fieldmap.consistency_issues
    ),
    "osticket": FieldMapSpec(
        OSTICKET_FILE, osticket_field_map.OsTicketFieldMap, osticket_field_map.consistency_issues
    ),
}
"""The field map of each helpdesk the project knows, by ``ESCALATIONS_HELPDESK`` name."""


@dataclass(frozen=True)
class Mappings:
    """The process profile and the helpdesk's field map, validated, and where they came from.
    ``helpdesk`` is read by that helpdesk's binding only; the domain and the jobs use the
    profile and the binding."""

    profile: ProcessProfile
    helpdesk: BaseModel
    """The field map of ``helpdesk_name`` (for Zammad, ``ZammadFieldMap``)."""
    directory: Path
    helpdesk_name: str = "zammad"

    @property
    def helpdesk_file(self) -> Path:
        return self.directory / FIELD_MAPS[self.helpdesk_name].file


def load_mappings(directory: Path, helpdesk: str = "zammad") -> Mappings:
    """Load and validate ``process.toml`` and the helpdesk's field map from ``directory``.

    Args:
        directory: the mappings directory; file names in problems are built from it as given.
        helpdesk: whose field map (``zammad`` reads ``zammad.toml``).

    Returns:
        The validated mappings.

    Raises:
        MappingError: with every problem found in either file and across them.
        ConfigError: no field map is known for ``helpdesk``.
    """
    spec = FIELD_MAPS.get(helpdesk)
    if spec is None:
        raise ConfigError(f"ESCALATIONS_HELPDESK: no field map for helpdesk {helpdesk!r}")
    directory = Path(directory)
    process_problems: list[MappingProblem] = []
    helpdesk_problems: list[MappingProblem] = []
    process = _load(
        directory / PROCESS_FILE, ProcessProfile, profile.consistency_issues, process_problems
    )
    fields = _load(directory / spec.file, spec.model, spec.consistency, helpdesk_problems)
    if process is not None and fields is not None:
        helpdesk_problems.extend(_cross_file_problems(process, fields))
    problems = [
        problem
        for found in (process_problems, helpdesk_problems)
        for problem in sorted(found, key=lambda p: p.line or 0)
    ]
    process_model = process.model if process is not None else None
    field_map = fields.model if fields is not None else None
    if problems or not isinstance(process_model, ProcessProfile) or field_map is None:
        raise MappingError(problems)
    return Mappings(
        profile=process_model, helpdesk=field_map, directory=directory, helpdesk_name=helpdesk
    )


def load_mapping_file(path: Path, model_cls: type[ModelT]) -> ModelT:
    """Load and validate one more mappings file (e.g. ``zammad-provision.toml``, read only by
    the command that needs it) with the same rules and messages as the two main files.

    Raises:
        MappingError: with every problem found, each naming file, line and key.
    """
    problems: list[MappingProblem] = []
    loaded = _load(Path(path), model_cls, lambda: [], problems)
    model = loaded.model if loaded is not None else None
    if problems or not isinstance(model, model_cls):
        raise MappingError(sorted(problems, key=lambda p: p.line or 0))
    return model


# -- one file ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    """A file that parsed as TOML: its model if it validated, and every section that did."""

    path: Path
    index: KeyLineIndex
    model: BaseModel | None
    sections: dict[str, Any]


def _load(
    path: Path,
    model_cls: type[BaseModel],
    consistency: Callable[..., list[Issue]],
    problems: list[MappingProblem],
) -> _Loaded | None:
    text = _read(path, problems)
    if text is None:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(_syntax_problem(path, text, exc))
        return None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        problems.append(_too_deep_problem(path, text))
        return None
    except ValueError as exc:  # int() refuses more digits than sys.get_int_max_str_digits()
        problems.append(_too_long_problem(path, text, exc))
        return None
    index = KeyLineIndex(text)
    issues: list[Issue] = []
    try:
        model = model_cls.model_validate(data, context={ISSUES_CONTEXT_KEY: issues})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        problems.extend(_error_problem(path, index, model_cls, err) for err in errors)
        sections = _valid_sections(model_cls, data, errors)
        wanted = inspect.signature(consistency).parameters
        issues = consistency(**{name: sections.get(name) for name in wanted})
        problems.extend(_issue_problem(path, index, issue) for issue in issues)
        return _Loaded(path, index, None, sections)
    problems.extend(_issue_problem(path, index, issue) for issue in issues)
    sections = {name: getattr(model, name) for name in type(model).model_fields}
    return _Loaded(path, index, None if issues else model, sections)


def _read(path: Path, problems: list[MappingProblem]) -> str | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        problems.append(MappingProblem(path, None, "", "file not found"))
        return None
    except OSError as exc:
        problems.append(MappingProblem(path, None, "", f"cannot read: {exc.strerror or exc}"))
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(MappingProblem(path, line, "", "not UTF-8 text (save the file as UTF-8)"))
        return None


def _too_deep_problem(path: Path, text: str) -> MappingProblem:
    depth, line = _deepest_nesting(text)
    return MappingProblem(
        path,
        line,
        _key_on_line(text, line),
        f"nested too deeply ({depth} levels of arrays or inline tables)",
    )


def _too_long_problem(path: Path, text: str, exc: ValueError) -> MappingProblem:
    limit = sys.get_int_max_str_digits()
    match = re.search(rf"[0-9][0-9_]{{{limit},}}", text)
    if match is None:  # some other value tomllib could not convert
        return MappingProblem(path, None, "", f"cannot read the value: {exc}")
    line = text.count("\n", 0, match.start()) + 1
    digits = sum(ch.isdigit() for ch in match[0])
    return MappingProblem(
        path,
        line,
        _key_on_line(text, line),
        f"a number with {digits} digits is too long (at most {limit})",
    )


def _key_on_line(text: str, line: int) -> str:
    """The dotted key whose value is on ``line`` (the last ``key = value`` that starts on it
    or before it), or the empty string."""
    keys = [loc for at, loc in KeyLineIndex(text).assignments if at <= line]
    return format_loc(keys[-1]) if keys else ""


def _deepest_nesting(text: str) -> tuple[int, int]:
    """The deepest nesting of ``[`` and ``{`` in values, and the line it is first reached on.
    Strings and comments are skipped; a table header (``[a]``, ``[[a]]``) opens nothing."""
    depth = deepest = deepest_at = 0
    pos = 0
    at_line_start = True
    while pos < len(text):
        char = text[pos]
        if char in " \t\r\n":
            at_line_start = at_line_start or char == "\n"
            pos += 1
            continue
        if char == "#" or (char == "[" and at_line_start and depth == 0):
            end = text.find("\n", pos)  # a comment or a table header: to the end of the line
            pos = len(text) if end < 0 else end
        elif char in "\"'":
            quote = char * 3 if text.startswith(char * 3, pos) else char
            pos += len(quote)
            while pos < len(text) and not text.startswith(quote, pos):
                if len(quote) == 1 and text[pos] == "\n":
                    break  # unterminated: tomllib stopped before it
                pos += 2 if char == '"' and text[pos] == "\\" else 1
            else:
                pos += len(quote)
        else:
            if char in "[{":
                depth += 1
                if depth > deepest:
                    deepest, deepest_at = depth, pos
            elif char in "]}":
                depth = max(depth - 1, 0)
            pos += 1
        at_line_start = False
    return deepest, text.count("\n", 0, deepest_at) + 1


_AT_RE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)$")


def _syntax_problem(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> MappingProblem:
    message = str(exc)
    line: int | None = getattr(exc, "lineno", None)  # Python 3.14+
    column: int | None = getattr(exc, "colno", None)
    message = getattr(exc, "msg", message)
    match = _AT_RE.search(message)
    if match:
        message = message[: match.start()]
        if match[1]:
            line, column = int(match[1]), int(match[2])
    if line is None:  # "at end of document"
        line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        column = None
    where = f" (column {column})" if column else " (at end of file)"
    return MappingProblem(path, line, "", f"TOML syntax error: {message}{where}")


def _valid_sections(
    model_cls: type[BaseModel], data: dict[str, Any], errors: list[ErrorDetails]
) -> dict[str, Any]:
    """The top-level sections without errors, validated on their own (for the other checks)."""
    failed = {err["loc"][0] if err["loc"] else None for err in errors}
    if None in failed:
        return {}
    sections: dict[str, Any] = {}
    for name, info in model_cls.model_fields.items():
        if name in failed:
            continue
        if name not in data:
            if not info.is_required():
                sections[name] = info.get_default(call_default_factory=True)
            continue
        field_type: Any = Annotated[info.annotation, info]  # keeps the field's constraints
        try:
            sections[name] = TypeAdapter(field_type).validate_python(data[name])
        except ValidationError:
            continue
    return sections


# -- turning pydantic errors and issues into problems ------------------------------------------

_PLAIN_MESSAGES = {
    "int_type": "expected an integer",
    "string_type": "expected a string (in double quotes)",
    "bool_type": "expected true or false",
    "tuple_type": "expected an array",
    "list_type": "expected an array",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
    "time_type": 'expected a time as "HH:MM"',
    "date_type": "expected a date such as 2026-12-25",
}


def _error_problem(
    path: Path, index: KeyLineIndex, model_cls: type[BaseModel], err: ErrorDetails
) -> MappingProblem:
    loc: Loc = tuple(err["loc"])
    is_key = bool(loc) and loc[-1] == "[key]"
    key_loc: Loc = tuple(part for part in loc if part != "[key]")
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "extra_forbidden":
        message = "unknown key " + choices_hint(str(loc[-1]), _allowed_keys(model_cls, loc[:-1]))
    elif kind == "missing":
        message = "required key is missing"
    elif kind in ("value_error", "assertion_error"):
        message = str(ctx.get("error", err["msg"]))
    elif kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        message = f"unknown value {_show(value)} " + choices_hint(str(value), choices)
    elif kind == "too_short":
        count = ctx.get("min_length", 1)
        message = f"needs at least {count} entr{'y' if count == 1 else 'ies'}"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        word = {
            "greater_than_equal": ("at least", "ge"),
            "greater_than": ("greater than", "gt"),
            "less_than_equal": ("at most", "le"),
            "less_than": ("less than", "lt"),
        }[kind]
        message = f"must be {word[0]} {ctx.get(word[1])}, got {_show(value)}"
    elif kind in _PLAIN_MESSAGES:
        message = f"{_PLAIN_MESSAGES[kind]}, got {_show(value)}"
    elif kind.startswith("date"):
        detail = str(err["msg"]).partition(", ")[2] or str(err["msg"])
        message = f"not a valid date ({detail}), got {_show(value)}; write dates as 2026-12-25"
    else:
        message = f"{err['msg']}, got {_show(value)}"
    if is_key:
        message = f"invalid name: {message}"
    return MappingProblem(path, index.line_for(key_loc), format_loc(key_loc), message)


def _issue_problem(path: Path, index: KeyLineIndex, issue: Issue) -> MappingProblem:
    loc, message = issue
    return MappingProblem(path, index.line_for(loc), format_loc(loc), message)


SHOWN_CHARS = 60
"""Longer values are cut in messages (a problem stays one readable line)."""


def _show(value: Any) -> str:
    """A value as the admin wrote it in TOML (roughly)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    shown = repr(value)
    if len(shown) > SHOWN_CHARS:
        shown = f"{shown[: SHOWN_CHARS - 20]}… ({len(shown)} characters)"
    return shown


def _allowed_keys(model_cls: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the model at ``loc`` (inside ``model_cls``) allows."""
    annotation: Any = model_cls
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        elif get_origin(annotation) in (list, tuple):
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


# -- across the two files -------------------------------------------------------------------


def _cross_file_problems(process: _Loaded, zammad: _Loaded) -> list[MappingProblem]:
    """Every role process.toml uses has a person in the field map, and no person is
    unknown."""
    people = zammad.sections.get("people")
    roles = process.sections.get("roles")
    if people is None:
        return []
    problems: list[MappingProblem] = []
    used = profile.referenced_roles(
        levels=process.sections.get("levels"), carrier=process.sections.get("carrier")
    )
    for role, where in used.items():
        if role in people or (roles is not None and role not in roles):
            continue  # mapped, or an unknown role already reported in process.toml
        problems.append(
            MappingProblem(
                zammad.path,
                zammad.index.line_for(("people", role)),
                format_loc(("people", role)),
                f"role {role!r} has no helpdesk user (it is used in {process.path} "
                f'at {format_loc(where)}); add {role} = "login or email"',
            )
        )
    if roles is not None:
        for key in people:
            if key not in roles:
                problems.append(
                    MappingProblem(
                        zammad.path,
                        zammad.index.line_for(("people", key)),
                        format_loc(("people", key)),
                        f"unknown role {key!r} {choices_hint(key, list(roles))} "
                        f"(roles are defined in {process.path})",
                    )
                )
    return problems


# -- where each key is defined -----------------------------------------------------------------


class KeyLineIndex:
    """Maps each key path of a TOML document to the 1-based line where it is defined.

    Paths are loc tuples as pydantic reports them: table and key names, and 0-based positions
    in arrays (``("levels", 2, "owner")``). Handles ``[table]``, ``[[array.of.tables]]``
    (counting elements), dotted and quoted keys, inline tables and arrays, including values
    that span several lines. Build it only from text that ``tomllib`` accepted.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
        self.lines: dict[Loc, int] = {(): 1}
        self.assignments: list[tuple[int, Loc]] = []
        """``(line, key path)`` of each ``key = value`` outside inline tables, in order."""
        self._arrays: dict[Loc, int] = {}  # array-of-tables path -> index of its last element
        try:
            self._document()
        except (IndexError, ValueError, RecursionError, tomllib.TOMLDecodeError):
            pass  # an unexpected construct: keep the lines found so far; the rest fall back

    def line_for(self, loc: Sequence[str | int]) -> int:
        """The line of ``loc``, or of its nearest enclosing key that is written down, or 1."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1

    # -- scanner -------------------------------------------------------------------------

    def _line(self) -> int:
        return bisect.bisect_right(self._line_starts, self._pos)

    def _record(self, path: Loc, line: int) -> None:
        for end in range(1, len(path) + 1):
            self.lines.setdefault(path[:end], line)

    def _peek(self, token: str) -> bool:
        return self._text.startswith(token, self._pos)

    def _expect(self, token: str) -> None:
        if not self._peek(token):
            raise ValueError(f"expected {token!r} at offset {self._pos}")
        self._pos += len(token)

    def _skip_blank(self, *, newlines: bool) -> None:
        text = self._text
        while self._pos < len(text):
            char = text[self._pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self._pos += 1
            elif char == "#":
                end = text.find("\n", self._pos)
                self._pos = len(text) if end < 0 else end
            else:
                return

    def _document(self) -> None:
        table: Loc = ()
        while True:
            self._skip_blank(newlines=True)
            if self._pos >= len(self._text):
                return
            line = self._line()
            if self._peek("[["):
                self._pos += 2
                keys = self._key()
                self._skip_blank(newlines=False)
                self._expect("]]")
                array = self._resolve(keys)
                index = self._arrays.get(array, -1) + 1
                self._arrays[array] = index
                table = (*array, index)
                self._record(table, line)
            elif self._peek("["):
                self._pos += 1
                keys = self._key()
                self._skip_blank(newlines=False)
                self._expect("]")
                table = self._resolve(keys)
                self._record(table, line)
            else:
                self._key_value(table)

    def _resolve(self, keys: Sequence[str]) -> Loc:
        """A table header's path, with the current element of each enclosing array of tables."""
        path: Loc = ()
        for key in keys:
            if path in self._arrays:
                path = (*path, self._arrays[path])
            path = (*path, key)
        return path

    def _key_value(self, table: Loc) -> None:
        line = self._line()
        path = (*table, *self._key())
        self._skip_blank(newlines=False)
        self._expect("=")
        self._skip_blank(newlines=False)
        self._record(path, line)
        self.assignments.append((line, path))
        self._value(path)

    def _key(self) -> list[str]:
        keys: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            text, start = self._text, self._pos
            if text[start] in "\"'":
                self._string()
                keys.append(tomllib.loads("k = " + text[start : self._pos])["k"])
            else:
                match = re.compile(r"[A-Za-z0-9_-]+").match(text, start)
                if not match:
                    raise ValueError(f"expected a key at offset {start}")
                keys.append(match[0])
                self._pos = match.end()
            self._skip_blank(newlines=False)
            if not self._peek("."):
                return keys
            self._pos += 1

    def _value(self, path: Loc) -> None:
        char = self._text[self._pos]
        if char in "\"'":
            self._string()
        elif char == "[":
            self._array(path)
        elif char == "{":
            self._inline_table(path)
        else:
            match = re.compile(r"[^,\]}\r\n#]*").match(self._text, self._pos)
            assert match is not None  # the pattern matches the empty string
            self._pos = match.end()

    def _string(self) -> None:
        text = self._text
        quote = text[self._pos]
        if self._peek(quote * 3):
            self._pos += 3
            while not self._peek(quote * 3):
                self._pos += 2 if quote == '"' and text[self._pos] == "\\" else 1
                if self._pos >= len(text):
                    raise ValueError("unterminated string")
            self._pos += 3
            for _ in range(2):  # up to two quotes may end the content: """a""""
                if self._peek(quote):
                    self._pos += 1
            return
        self._pos += 1
        while text[self._pos] != quote:
            self._pos += 2 if quote == '"' and text[self._pos] == "\\" else 1
        self._pos += 1

    def _array(self, path: Loc) -> None:
        self._pos += 1
        index = 0
        while True:
            self._skip_blank(newlines=True)
            if self._peek("]"):
                self._pos += 1
                return
            item = (*path, index)
            self._record(item, self._line())
            self._value(item)
            self._skip_blank(newlines=True)
            if self._peek(","):
                self._pos += 1
            index += 1

    def _inline_table(self, path: Loc) -> None:
        self._pos += 1
        while True:
            self._skip_blank(newlines=True)
            if self._peek("}"):
                self._pos += 1
                return
            line = self._line()
            item = (*path, *self._key())
            self._skip_blank(newlines=False)
            self._expect("=")
            self._skip_blank(newlines=False)
            self._record(item, line)
            self._value(item)
            self._skip_blank(newlines=True)
            if self._peek(","):
                self._pos += 1
