"""The layer rule (DESIGN.md "Architecture", issue 9): imports point one way, and no two files
import each other, however indirectly.

::

    kernel      connector/clock.py, connector/redaction.py     imports the standard library only
    connector   connector/**                                   kernel, connector
    sandbox     sandbox/**                                     kernel, sandbox
    domain      escalations/** (not app/, not __main__.py)     kernel, connector, domain
    jobs        jobs/**                                        kernel, connector, domain, jobs
    app         escalations/app/**, escalations/__main__.py    everything
                helpdesk_escalations/** (the installed entry point)

Every layer but the kernel may also import third-party packages. No layer imports the test
suite. The check reads the source with ``ast`` and sees every import: at module level, inside
functions, under ``if TYPE_CHECKING:``, relative ones (resolved against the file's package) and
``importlib.import_module("…")`` with a literal name. An import that runs a package's
``__init__.py`` on the way (``import connector.clock`` runs ``connector/__init__.py``) counts as
an import of the module it names only.

The checker is plain functions over ``{path: source}``, so ``test_checker_*`` below feed it
small made-up trees and prove it reports a wrong arrow and a cycle: this test cannot pass by
seeing nothing.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("connector", "escalations", "jobs", "sandbox", "helpdesk_escalations")
"""Our top-level packages that the layers cover (``mappings`` holds TOML only);
``helpdesk_escalations`` is the one name installed, the others inside it (issue 14)."""
NOT_IMPORTABLE = frozenset({"tests", "bench", "scripts"})
"""First-party folders production code must never import."""
KERNEL = frozenset({"connector.clock", "connector.redaction"})

ALLOWED: Mapping[str, frozenset[str]] = {
    "kernel": frozenset(),
    "connector": frozenset({"kernel", "connector"}),
    "sandbox": frozenset({"kernel", "sandbox"}),
    "domain": frozenset({"kernel", "connector", "domain"}),
    "jobs": frozenset({"kernel", "connector", "domain", "jobs"}),
    "app": frozenset({"kernel", "connector", "sandbox", "domain", "jobs", "app"}),
}
"""Which of our layers each layer may import."""
THIRD_PARTY_ALLOWED = frozenset(ALLOWED) - {"kernel"}
STDLIB = frozenset(sys.stdlib_module_names)


def layer_of(module: str) -> str | None:
    """The layer of one of our modules (dotted name); ``None`` if it is not ours."""
    if module in KERNEL:
        return "kernel"
    parts = module.split(".")
    if parts[0] == "escalations":
        return "app" if parts[1:2] in (["app"], ["__main__"]) else "domain"
    if parts[0] == "helpdesk_escalations":
        return "app"  # the installed entry point: makes the bundled packages importable
    return {"connector": "connector", "sandbox": "sandbox", "jobs": "jobs"}.get(parts[0])


def module_name(path: str) -> str:
    """``jobs/sync/poll.py`` → ``jobs.sync.poll``; ``jobs/sync/__init__.py`` → ``jobs.sync``."""
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass(frozen=True)
class Import:
    path: str
    line: int
    target: str
    """The module imported, resolved (a submodule where ``from pkg import sub`` names one)."""
    text: str
    """The statement as written, for the message."""


def _package_of(path: str) -> list[str]:
    parts = module_name(path).split(".")
    return parts if path.endswith("__init__.py") else parts[:-1]


DYNAMIC = "<dynamic>"


def _dynamic_import(node: ast.Call) -> str | None:
    """What ``importlib.import_module("x")`` or ``__import__("x")`` imports: ``"x"``, or
    ``DYNAMIC`` when the name is not a literal; ``None`` for any other call."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__"):
        return None
    first = node.args[0] if node.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return DYNAMIC


def imports_in(path: str, source: str, modules: frozenset[str]) -> Iterator[Import]:
    """Every import in one file; ``modules``: the dotted names of every module in the tree,
    to tell ``from pkg import submodule`` from ``from pkg import name``."""
    tree = ast.parse(source, filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package_of(path)
                keep = len(package) - (node.level - 1)
                if keep <= 0:
                    yield Import(path, node.lineno, "<beyond the top level>", ast.unparse(node))
                    continue
                base = ".".join(package[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                target = sub if sub in modules else base
                yield Import(path, node.lineno, target, ast.unparse(node))
        elif isinstance(node, ast.Call) and (target := _dynamic_import(node)) is not None:
            yield Import(path, node.lineno, target, ast.unparse(node))


def layer_violations(sources: Mapping[str, str]) -> list[str]:
    """``file:line: …`` for every import against the rule (``sources``: path → text, paths
    relative to the repository root, ``/``-separated)."""
    modules = frozenset(module_name(p) for p in sources)
    found: list[tuple[str, int, str]] = []
    for path, source in sources.items():
        layer = layer_of(module_name(path))
        if layer is None:
            found.append((path, 1, "not in any layer (add it to tests/test_layers.py)"))
            continue
        for imp in imports_in(path, source, modules):
            problem = _against_the_rule(layer, imp)
            if problem:
                found.append((path, imp.line, f"{imp.text!r}: {problem}"))
    return [f"{path}:{line}: {text}" for path, line, text in sorted(found)]


def _against_the_rule(layer: str, imp: Import) -> str | None:
    top = imp.target.partition(".")[0]
    if imp.target == DYNAMIC:
        return None if layer == "app" else "a dynamic import this check cannot follow"
    if imp.target.startswith("<"):
        return "a relative import beyond the top-level package"
    if top in PACKAGES:
        target_layer = layer_of(imp.target)
        assert target_layer is not None
        if target_layer in ALLOWED[layer]:
            return None
        allowed = ", ".join(sorted(ALLOWED[layer])) or "nothing of ours"
        return f"{layer} imports {imp.target} ({target_layer}); {layer} may import {allowed}"
    if top in NOT_IMPORTABLE:
        return f"production code imports {top}/"
    if top not in STDLIB and layer not in THIRD_PARTY_ALLOWED:
        return f"the kernel imports {top}, not the standard library"
    return None


def import_graph(sources: Mapping[str, str]) -> dict[str, dict[str, Import]]:
    """module → {module it imports → the first such import}, our modules only."""
    modules = frozenset(module_name(p) for p in sources)
    graph: dict[str, dict[str, Import]] = {m: {} for m in modules}
    for path, source in sources.items():
        edges = graph[module_name(path)]
        for imp in imports_in(path, source, modules):
            target = imp.target
            while target and target not in modules:  # ``import pkg.name`` of a non-module
                target = target.rpartition(".")[0]
            if target:
                edges.setdefault(target, imp)
    return graph


@dataclass(frozen=True)
class Cycle:
    modules: frozenset[str]
    """Every module of the tangle (a strongly connected group of the import graph)."""
    chain: list[Import]
    """One loop through it, as the imports that make it."""


def import_cycles(sources: Mapping[str, str]) -> list[Cycle]:
    """One ``Cycle`` per strongly connected group of modules (Tarjan), so a tangle of several
    loops is reported once, by one of its loops."""
    graph = import_graph(sources)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(start: str) -> None:
        # iterative Tarjan: (node, iterator over its neighbours)
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, neighbours = work[-1]
            for nxt in neighbours:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group: set[str] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    if len(group) > 1 or node in graph[node]:
                        groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [Cycle(frozenset(group), _a_cycle_in(graph, group)) for group in groups]


def _a_cycle_in(graph: Mapping[str, Mapping[str, Import]], group: set[str]) -> list[Import]:
    """A shortest loop through the group's first module (breadth-first inside the group)."""
    start = min(group)
    came_from: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt, imp in sorted(graph[node].items()):
                if nxt not in group:
                    continue
                if nxt == start:
                    chain = [imp]
                    while node != start:
                        chain.append(came_from[node])
                        node = module_name(came_from[node].path)
                    return list(reversed(chain))
                if nxt not in came_from:
                    came_from[nxt] = imp
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no loop in {sorted(group)}")  # Tarjan only groups loops


def describe_cycle(cycle: Cycle) -> str:
    chain = cycle.chain
    names = [module_name(chain[0].path), *(imp.target for imp in chain)]
    steps = "\n".join(f"    {imp.path}:{imp.line}: {imp.text}" for imp in chain)
    text = " → ".join(names) + "\n" + steps
    if len(cycle.modules) > len(chain):
        text += "\n    (in one tangle with: " + ", ".join(sorted(cycle.modules - set(names))) + ")"
    return text


def project_sources() -> dict[str, str]:
    """Every ``.py`` file of our packages, by path relative to the repository root."""
    return {
        path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


# -- the project ------------------------------------------------------------------------------


def test_imports_follow_the_layers() -> None:
    sources = project_sources()
    assert len(sources) > 50, "the checker found too few files: is ROOT right?"
    problems = layer_violations(sources)
    assert not problems, "imports against the layer rule:\n" + "\n".join(problems)


KNOWN_CYCLES: Mapping[frozenset[str], str] = {
    # escalations/store/sqlite/_db.py imports its own package inside ``_migrate`` ("tests may
    # replace its list"), while the package's ``__init__`` imports ``_db`` and every module
    # built on it: one deferred import ties the seven files into a loop. Harmless at run time,
    # but a cycle between files all the same. To remove it: let ``_migrate`` take the
    # migrations from the store (an attribute tests may set), or have the tests patch
    # ``_db.load_migrations``; then delete this entry.
    frozenset(
        {
            "escalations.store.sqlite",
            "escalations.store.sqlite._db",
            "escalations.store.sqlite.known_articles",
            "escalations.store.sqlite.outbox",
            "escalations.store.sqlite.records",
            "escalations.store.sqlite.runlog",
            "escalations.store.sqlite.sync_state",
        }
    ): "_db._migrate imports its own package",
}
"""Cycles known when this test was written, each with why and how it goes away. Anything
else in a loop (a new cycle, or a new module joining a known one) fails the test."""


def test_no_import_cycle_between_files() -> None:
    cycles = import_cycles(project_sources())
    new = [describe_cycle(c) for c in cycles if c.modules not in KNOWN_CYCLES]
    assert not new, "import cycles:\n" + "\n".join(new)
    gone = [sorted(g) for g in KNOWN_CYCLES if g not in {c.modules for c in cycles}]
    assert not gone, f"cycles no longer there: remove them from KNOWN_CYCLES: {gone}"


def test_every_layer_has_files() -> None:
    """A moved package must not leave a layer empty without this test noticing."""
    layers = {layer_of(module_name(p)) for p in project_sources()}
    assert layers == set(ALLOWED)


def test_the_packaged_top_level_names_are_the_layered_ones() -> None:
    """What setuptools installs is what this test covers: a new top-level package (a
    ``common``, ``utils`` …) fails here until it is given a layer."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = pyproject["tool"]["setuptools"]["packages"]
    bundled = {p.removeprefix("helpdesk_escalations._lib.").split(".")[0] for p in packages}
    assert bundled == {*PACKAGES, "mappings"}
    assert not list((ROOT / "mappings").rglob("*.py")), "mappings/ holds TOML, never code"


# -- the checker itself -----------------------------------------------------------------------


TREE = {
    "connector/__init__.py": "",
    "connector/clock.py": "import time\n",
    "connector/base.py": "from connector import clock\n",
    "escalations/__init__.py": "",
    "escalations/models.py": "from connector.base import X\n",
    "escalations/app/__init__.py": "",
    "escalations/app/cli.py": "import jobs.worker\nimport sandbox.core\n",
    "jobs/__init__.py": "",
    "jobs/worker.py": "from escalations import models\n",
    "sandbox/__init__.py": "",
    "sandbox/core.py": "import requests\nfrom connector.clock import SystemClock\n",
}


def test_checker_passes_a_tree_that_keeps_the_rule() -> None:
    assert layer_violations(TREE) == []
    assert import_cycles(TREE) == []


def test_checker_reports_each_wrong_arrow_with_file_and_line() -> None:
    tree = {
        **TREE,
        # the kernel importing a third-party package, and the connector the domain
        "connector/clock.py": "import time\nimport requests\n",
        "connector/base.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from escalations.models import Escalation\n"
        ),
        # the domain importing jobs from inside a function, and through importlib
        "escalations/models.py": "def f():\n    import jobs.worker\n",
        "escalations/effects.py": "import importlib\nimportlib.import_module('jobs.worker')\n",
        # jobs importing the application layer, the sandbox and the test suite
        "jobs/worker.py": "from escalations.app import cli\nimport sandbox\n",
        "jobs/helpers.py": "from tests.conftest import clock\n",
        # the sandbox importing more of the connector than the kernel
        "sandbox/core.py": "from connector import base\n",
    }
    problems = layer_violations(tree)
    by_place = {p.split(" ")[0]: p for p in problems}
    assert list(by_place) == [
        "connector/base.py:3:",  # under TYPE_CHECKING
        "connector/clock.py:2:",
        "escalations/effects.py:2:",
        "escalations/models.py:2:",  # inside a function
        "jobs/helpers.py:1:",
        "jobs/worker.py:1:",
        "jobs/worker.py:2:",
        "sandbox/core.py:1:",
    ], problems
    assert "connector imports escalations.models (domain)" in by_place["connector/base.py:3:"]
    assert "the kernel imports requests" in by_place["connector/clock.py:2:"]
    assert "domain imports jobs.worker (jobs)" in by_place["escalations/models.py:2:"]
    assert "jobs imports escalations.app.cli (app)" in by_place["jobs/worker.py:1:"]
    assert "jobs imports sandbox (sandbox)" in by_place["jobs/worker.py:2:"]
    assert "production code imports tests/" in by_place["jobs/helpers.py:1:"]
    assert "sandbox imports connector.base (connector)" in by_place["sandbox/core.py:1:"]
    # relative imports cannot leave a top-level package: reported, not silently dropped
    beyond = layer_violations({**TREE, "escalations/models.py": "from ..jobs import worker\n"})
    assert beyond == [
        "escalations/models.py:1: 'from ..jobs import worker': a relative import beyond the "
        "top-level package"
    ]
    # an import by a computed name cannot be checked, so outside the app layer it is refused
    dynamic = "import importlib\n\ndef load(name):\n    return importlib.import_module(name)\n"
    assert layer_violations({**TREE, "jobs/worker.py": dynamic}) == [
        "jobs/worker.py:4: 'importlib.import_module(name)': a dynamic import this check cannot "
        "follow"
    ]
    # a file outside every layer is reported rather than skipped
    assert layer_violations({**TREE, "tools/helper.py": ""}) == [
        "tools/helper.py:1: not in any layer (add it to tests/test_layers.py)"
    ]


def test_checker_resolves_relative_imports_against_the_package() -> None:
    tree = {
        **TREE,
        "escalations/effects/__init__.py": "from . import base\n",
        "escalations/effects/base.py": "from ..app import cli\nfrom .. import models\n",
    }
    modules = frozenset(module_name(p) for p in tree)
    targets = [i.target for i in imports_in("escalations/effects/base.py", tree[
        "escalations/effects/base.py"], modules)]  # fmt: skip
    assert targets == ["escalations.app.cli", "escalations.models"]
    assert [p.split(" ")[0] for p in layer_violations(tree)] == ["escalations/effects/base.py:1:"]


def test_checker_reports_a_cycle_with_its_path() -> None:
    tree = {
        **TREE,
        "escalations/models.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from escalations.store import Store\n"
        ),
        "escalations/store.py": "def f():\n    from escalations import workflow\n",
        "escalations/workflow.py": "from . import models\n",
    }
    cycles = import_cycles(tree)
    assert len(cycles) == 1
    text = describe_cycle(cycles[0])
    assert text.splitlines()[0] == (
        "escalations.models → escalations.store → escalations.workflow → escalations.models"
    )
    assert "escalations/store.py:2: from escalations import workflow" in text
    assert cycles[0].modules == {"escalations.models", "escalations.store", "escalations.workflow"}
    # a second loop through the same modules makes the same one tangle, reported once
    tangled = {
        **tree,
        "escalations/workflow.py": "from . import models\nimport escalations.store\n",
    }
    assert [c.modules for c in import_cycles(tangled)] == [cycles[0].modules]
    # a package's __init__ and one of its modules importing each other (the known cycle's shape)
    package = {
        **TREE,
        "escalations/store/__init__.py": "from escalations.store._db import Base\n",
        "escalations/store/_db.py": "def f():\n    from escalations import store\n",
    }
    assert [c.modules for c in import_cycles(package)] == [
        {"escalations.store", "escalations.store._db"}
    ]
    # a module importing itself is a cycle as well
    assert import_cycles({**TREE, "jobs/worker.py": "import jobs.worker\n"})


def test_checker_catches_the_old_arrows_put_back_into_this_tree() -> None:
    """Two of the arrows issue 9 removed, put back into copies of the real files: the
    connector reading the domain's settings, and the sandbox's core and seed importing each
    other (under ``TYPE_CHECKING``, so only the parse sees it)."""
    sources = project_sources()
    sources["connector/http.py"] += "\nfrom escalations.settings import Settings\n"
    sources["sandbox/seed.py"] += (
        "\nif TYPE_CHECKING:\n    from sandbox.core import ZammadSandbox\n"
    )
    sources["sandbox/core.py"] += "\ndef _seed():\n    from sandbox import seed\n"
    line = sources["connector/http.py"].count("\n")
    assert f"connector/http.py:{line}:" in "\n".join(layer_violations(sources))
    tangles = [c.modules for c in import_cycles(sources) if c.modules not in KNOWN_CYCLES]
    assert any({"sandbox.core", "sandbox.seed"} <= t for t in tangles), tangles
