"""No Zammad vocabulary in the jobs or in the domain's own modules (issue 9, "Helpdesk
bindings"): what a Zammad tag, mention, attribute or title prefix means is known by the
binding (``escalations/bindings/**``), the helpdesk write kinds
(``escalations/effects/helpdesk.py``), the application layer and the connector, and by no one
else.

The check reads code, not prose. With ``ast`` it looks at

- every identifier: names, attributes, arguments, keywords, definitions, imported modules and
  names. Each is split into words (``ALLOWED_TAGS`` → ``allowed``, ``tags``; ``TagName`` →
  ``tag``, ``name``), so ``stage`` is not a ``tag``;
- every string constant that is not a docstring, the literal parts of f-strings included:
  single-token strings (``"tags"``, ``"ticket.tags"``) are split into words the same way;
  any string is searched for the Zammad-only marks in ``MARKS``;
- the names ``mappings/zammad.toml`` configures under ``[fields]``, ``[tags]`` and ``[flag]``,
  as string constants (exactly, the ``{level}`` of a template matching any number). They are
  not looked for among identifiers: ``escalation_key`` is the domain's name for an
  escalation's key before it is the name of a Zammad attribute.

Comments and docstrings are not read. What matches but is not Zammad's (HTML tags) and what is
Zammad's but not fixed yet are listed below, each with its reason; an entry that no longer
matches anything fails the test, so the lists only shrink.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("jobs", "escalations")
NOT_SCANNED = (
    "escalations/bindings/",  # the bindings: where a helpdesk's meaning lives
    "escalations/app/",  # the application layer wires the Zammad adapter and binding
    "escalations/__main__.py",
    "escalations/effects/helpdesk.py",  # the helpdesk write kinds (tags, mentions, links)
)

WORDS: Mapping[str, str] = {
    "tag": "Zammad's ticket tags",
    "tags": "Zammad's ticket tags",
    "mention": "Zammad's mentions",
    "mentions": "Zammad's mentions",
    "fieldmap": "the Zammad field map",
    "zammad": "the vendor's name",
}
"""Words (of an identifier, or of a single-token string) that are Zammad's."""
PHRASES: Mapping[tuple[str, ...], str] = {
    ("object", "manager"): "Zammad's object manager (custom attributes)",
}
"""Runs of words that are Zammad's (``object_manager_attributes``, ``ObjectManager``). A
"field map" is the neutral name for any helpdesk's mapping file (DESIGN.md); ``fieldmap`` in
one word is the Zammad binding's module."""
MARKS: Mapping[str, str] = {
    "[ESC L": "the Zammad title prefix",
    "object_manager": "Zammad's object manager (custom attributes)",
    "data-mention": "a Zammad mention anchor",
}
"""Text that is Zammad's wherever it appears in a string."""
DOMAIN_WORDS = frozenset({"escalation"})
"""Configured names that are also the domain's own words: the default tag ``escalation`` is
spelt like the noun the whole project is about (an effect key purpose, a key in a stored
record), so a string equal to it says nothing about Zammad."""

NOT_VOCABULARY: Mapping[tuple[str, str], str] = {
    # Matches of the words above that do not mean the helpdesk's thing. Key: (file, the
    # identifier or string as written).
    ("escalations/sanitize.py", "ALLOWED_TAGS"): "HTML elements the sanitiser keeps",
    ("escalations/sanitize.py", "tags"): "nh3.clean()'s keyword for the HTML elements kept",
    ("escalations/sanitize.py", "clean_content_tags"): (
        "nh3.clean()'s keyword for the HTML elements dropped with their content"
    ),
    ("escalations/carrier.py", "_TAG_RE"): "strips HTML tags from an agent's note",
    ("escalations/carrier.py", "_TAG_BREAK_RE"): "turns HTML line-break tags into new lines",
    ("escalations/settings.py", "zammad"): (
        "the value ESCALATIONS_HELPDESK accepts: it names which helpdesk to connect to and "
        "reads nothing of it"
    ),
}

KNOWN_VIOLATIONS: Mapping[tuple[str, str], str] = {
    # Zammad vocabulary in the domain, found when this test was written, in files owned by
    # other changes. Fix the code and delete the entries (the test says when they are stale).
    #
    # escalations/mappings.py: the domain's loader names the Zammad field map itself (its
    # module, its class, its file name) in FIELD_MAPS. Fix: let each binding package declare
    # its field map (file, model, checks) and the application layer hand the loader the one
    # for ESCALATIONS_HELPDESK.
    ("escalations/mappings.py", "escalations.bindings.zammad"): "imports the Zammad binding",
    ("escalations/mappings.py", "fieldmap"): "imports the Zammad field map module",
    ("escalations/mappings.py", "zammad_fieldmap"): "the Zammad field map module",
    ("escalations/mappings.py", "ZammadFieldMap"): "the Zammad field map class",
    ("escalations/mappings.py", "ZAMMAD_FILE"): "the Zammad field map's file name",
    ("escalations/mappings.py", "zammad.toml"): "the Zammad field map's file name",
    ("escalations/mappings.py", "zammad"): "the FIELD_MAPS key, defaults, a parameter name",
    # escalations/profile.py: the process profile, shared by every helpdesk, carries the name
    # of a Zammad tag (``[archive] legal_hold_tag``) and Zammad's rule for tag names. Fix:
    # move the legal-hold mark into the helpdesk field map (mappings/zammad.toml [tags]) and
    # ``TagName`` with its check into escalations/bindings/zammad/fieldmap.py.
    ("escalations/profile.py", "TagName"): "Zammad's tag-name type",
    ("escalations/profile.py", "_check_tag"): "Zammad's tag-name rule",
    ("escalations/profile.py", "legal_hold_tag"): "a Zammad tag in the process profile",
}


@dataclass(frozen=True)
class Hit:
    path: str
    line: int
    text: str
    """The identifier or string, as written."""
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text!r}: {self.why}"


_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def words(identifier: str) -> list[str]:
    """``ZammadFieldMap`` → ``zammad field map``; ``ALLOWED_TAGS`` → ``allowed tags``."""
    return [
        w.lower() for part in re.split(r"[^A-Za-z0-9]+", identifier) for w in _CAMEL.findall(part)
    ]


def _vendor_words(text: str) -> str | None:
    found = words(text)
    for word in found:
        if word in WORDS:
            return f"{word!r} ({WORDS[word]})"
    for phrase, why in PHRASES.items():
        n = len(phrase)
        if any(tuple(found[i : i + n]) == phrase for i in range(len(found) - n + 1)):
            return f"{' '.join(phrase)!r} ({why})"
    return None


def configured_names(toml_text: str) -> dict[str, re.Pattern[str]]:
    """The names a Zammad field map configures under ``[fields]``, ``[tags]`` and ``[flag]``,
    each as the pattern a string must match in full (``{level}``: any number)."""
    data = tomllib.loads(toml_text)
    names = {
        value
        for table in ("fields", "tags", "flag")
        for value in data.get(table, {}).values()
        if isinstance(value, str) and value and value not in DOMAIN_WORDS
    }
    return {
        name: re.compile(re.escape(name).replace(re.escape("{level}"), r"\d+")) for name in names
    }


def _prose(tree: ast.AST) -> set[int]:
    """ids of the string constants that are statements of their own: docstrings, and the
    strings documenting an attribute under its assignment."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }


def _identifiers(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr
    elif isinstance(node, ast.arg) or (isinstance(node, ast.keyword) and node.arg):
        yield node.arg
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield node.name
    elif isinstance(node, ast.alias):
        yield node.name
        if node.asname:
            yield node.asname
    elif isinstance(node, ast.ImportFrom) and node.module:
        yield node.module
    elif isinstance(node, ast.Global | ast.Nonlocal):
        yield from node.names


def _f_string_shape(node: ast.JoinedStr) -> str:
    """An f-string with each ``{…}`` as ``{}``: ``f"escalation-l{n}"`` → ``escalation-l{}``."""
    return "".join(
        part.value if isinstance(part, ast.Constant) and isinstance(part.value, str) else "{}"
        for part in node.values
    )


def vocabulary_hits(path: str, source: str, configured: Mapping[str, re.Pattern[str]]) -> list[Hit]:
    """Every use of Zammad vocabulary in one file, in line order."""
    tree = ast.parse(source, filename=path)
    prose = _prose(tree)
    templates = {name.replace("{level}", "{}"): name for name in configured if "{level}" in name}
    hits: list[Hit] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 1)
        for identifier in _identifiers(node):
            why = _vendor_words(identifier)
            if why:
                hits.append(Hit(path, line, identifier, f"identifier with {why}"))
        if isinstance(node, ast.JoinedStr):
            shape = _f_string_shape(node)
            if shape in templates:
                why = f"the name mappings/zammad.toml configures as {templates[shape]!r}"
                hits.append(Hit(path, line, shape, why))
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if id(node) in prose:
            continue
        text = node.value
        for mark, why in MARKS.items():
            if mark in text:
                hits.append(Hit(path, line, text, f"string with {mark!r} ({why})"))
        if _TOKEN.fullmatch(text):
            why = _vendor_words(text)
            if why:
                hits.append(Hit(path, line, text, f"string with {why}"))
        for name, pattern in configured.items():
            if pattern.fullmatch(text):
                why = f"the name mappings/zammad.toml configures as {name!r}"
                hits.append(Hit(path, line, text, why))
    return sorted(hits, key=lambda h: (h.line, h.text))


def scanned_files() -> dict[str, str]:
    """The jobs and the domain's own modules: path (relative, ``/``) → source."""
    found: dict[str, str] = {}
    for top in SCANNED:
        for file in sorted((ROOT / top).rglob("*.py")):
            path = file.relative_to(ROOT).as_posix()
            if not path.startswith(NOT_SCANNED):
                found[path] = file.read_text(encoding="utf-8")
    return found


def unexplained(
    hits: Iterable[Hit], *allow_lists: Mapping[tuple[str, str], str]
) -> tuple[list[Hit], list[tuple[str, str]]]:
    """The hits no allow-list entry explains, and the entries that explain no hit."""
    allowed = {key for entries in allow_lists for key in entries}
    hits = list(hits)
    used = {(h.path, h.text) for h in hits}
    return (
        [h for h in hits if (h.path, h.text) not in allowed],
        sorted(allowed - used),
    )


def zammad_config() -> dict[str, re.Pattern[str]]:
    return configured_names((ROOT / "mappings" / "zammad.toml").read_text(encoding="utf-8"))


def _project_hits() -> list[Hit]:
    configured = zammad_config()
    return [
        hit
        for path, source in scanned_files().items()
        for hit in vocabulary_hits(path, source, configured)
    ]


# -- the project ------------------------------------------------------------------------------


def test_no_zammad_vocabulary_in_the_jobs_or_the_domain() -> None:
    files = scanned_files()
    assert any(p.startswith("jobs/sync/") for p in files)
    assert "escalations/lifecycle.py" in files
    assert not any(p.startswith(NOT_SCANNED) for p in files)
    new, stale = unexplained(_project_hits(), NOT_VOCABULARY, KNOWN_VIOLATIONS)
    assert not new, "Zammad vocabulary outside the bindings:\n" + "\n".join(map(str, new))
    assert not stale, f"allow-list entries that match nothing any more (delete them): {stale}"


def test_the_configured_names_are_read() -> None:
    """The field map's names are really looked for (a renamed table would empty the list)."""
    configured = zammad_config()
    assert {"escalation_level", "escalate", "escalated", "carrier-route-failed"} <= set(configured)
    assert configured["escalation-l{level}"].fullmatch("escalation-l12")
    assert "escalation" not in configured  # DOMAIN_WORDS


# -- the checker itself -----------------------------------------------------------------------


CONFIG = configured_names(
    '[flag]\nfield = "escalation_requested"\ntag = "escalate"\n'
    '[fields]\nsegment = "customer_segment"\n'
    '[tags]\nescalated = "escalated"\nlevel = "escalation-l{level}"\nescalation = "escalation"\n'
)

BAD = '''\
"""Docstrings may say tags, mentions, [ESC L1] and object_manager: prose is not read."""
from connector.zammad import ZammadAdapter
from escalations.bindings.zammad.fieldmap import ZammadFieldMap


def open_escalation(ticket, level, draft):
    draft.tags = {"escalated"}
    title = f"[ESC L{level}] {ticket.title}"
    search = Criterion(tag="escalate")
    body = '<a data-mention-user-id="3">Sam</a>'
    segment = ticket.fields["customer_segment"]
    mark = f"escalation-l{level}"
    old = "escalation-l2"
    url = "/api/v1/object_manager_attributes"
    payload = {"mentions": [3]}
    return title, search, body, segment, mark, old, url, payload
'''

GOOD = '''\
"""Moves an escalation between stages; the binding knows how a ticket shows its level."""


def move(esc, stage, binding, effect_key):
    purpose = "escalation"  # a domain word, though the default tag has the same spelling
    note = "Level changed: the tag and the mention are the binding's to write."
    return binding.apply_level(esc, stage), effect_key(purpose, esc.key), note
'''


def test_checker_finds_each_kind_of_vocabulary_with_its_line() -> None:
    found = [(h.line, h.text) for h in vocabulary_hits("jobs/x.py", BAD, CONFIG)]
    assert found == [
        (2, "ZammadAdapter"),
        (2, "connector.zammad"),
        (3, "ZammadFieldMap"),
        (3, "escalations.bindings.zammad.fieldmap"),
        (7, "escalated"),
        (7, "tags"),
        (8, "[ESC L"),
        (9, "escalate"),
        (9, "tag"),
        (10, '<a data-mention-user-id="3">Sam</a>'),
        (11, "customer_segment"),
        (12, "escalation-l{}"),
        (13, "escalation-l2"),
        (14, "/api/v1/object_manager_attributes"),
        (15, "mentions"),
    ], found


def test_checker_leaves_prose_html_and_domain_words_alone() -> None:
    assert vocabulary_hits("jobs/y.py", GOOD, CONFIG) == []


def test_allow_lists_explain_hits_and_go_stale() -> None:
    hits = vocabulary_hits("jobs/x.py", BAD, CONFIG)
    allow = {("jobs/x.py", "tags"): "test", ("jobs/x.py", "no-such-thing"): "test"}
    new, stale = unexplained(hits, allow)
    assert len(new) == len(hits) - 1
    assert all(h.text != "tags" for h in new)
    assert stale == [("jobs/x.py", "no-such-thing")]


def test_checker_catches_a_zammad_word_put_back_into_this_tree() -> None:
    """The Zammad knowledge issue 9 moved out of ``jobs/sync.py``, put back into a copy of
    a real job: the tag check and the title prefix."""
    path = "jobs/sync/flagging.py"
    source = scanned_files()[path] + (
        "\n\ndef _route_failed(ticket, level):\n"
        '    return "carrier-route-failed" in ticket.tags, f"[ESC L{level}] {ticket.title}"\n'
    )
    found = {h.text for h in vocabulary_hits(path, source, zammad_config())}
    assert {"carrier-route-failed", "tags", "[ESC L"} <= found
