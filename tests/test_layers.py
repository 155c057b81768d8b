"""The layering, checked on the source (docs/architecture.md describes it).

Between packages: the domain is Flask-free, the classifier is pure, the web layers and the jobs never
import each other. Inside `liaison/`: no import circle between modules, model modules stand on `core`
alone, services follow the domain order, and a function-level import of a `liaison` module says why.
"""
from __future__ import annotations

import ast
import graphlib
import io
import re
import tokenize
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIAISON = ROOT / "liaison"
FORBIDDEN = {
    "liaison": {"flask", "werkzeug", "bot", "miniprogram_api", "webapp", "jobs", "open311"},
    "classifiers": {"flask", "sqlalchemy", "redis", "rq", "liaison", "bot", "miniprogram_api", "jobs", "webapp"},
    "jobs": {"flask", "bot", "miniprogram_api", "webapp"},
    "bot": {"miniprogram_api", "jobs"},
    "miniprogram_api": {"bot", "jobs"},
    "console": {"bot", "miniprogram_api", "jobs"},
    "open311": {"bot", "miniprogram_api", "jobs", "console"},
}
# The service order: a service may import services of the domains to its left (and its own domain's).
DOMAINS = ("people", "messaging", "case", "media", "engagement", "intake", "rota", "points", "appraisal",
           "suggestion", "project", "conversation", "interop", "console", "bulletin")
# Importable from anywhere in the domain, whatever the order: tables and the transition table.
SHARED_LEAVES = ("models", "lifecycle")
# The floor every domain stands on; it imports no domain.
FLOOR = ("core", "wechat")
# Checks that fail on today's code. Strict: the run turns red once the imports are fixed, so the mark goes.


def marked(names, marks: dict[str, pytest.MarkDecorator]) -> list:
    return [pytest.param(name, marks=marks[name]) if name in marks else name for name in names]


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_the_layers(package):
    offenders = {str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[package])
                 for path in (ROOT / package).rglob("*.py")}
    assert {path: bad for path, bad in offenders.items() if bad} == {}


# ------------------------------------------------------------------------ the module graph of liaison/

@dataclass(frozen=True)
class Edge:
    """One import of a `liaison` module by another, where it is written."""

    source: str
    target: str
    line: int
    end_line: int
    in_function: bool
    type_checking: bool  # under `if TYPE_CHECKING:`: never executed, so no runtime edge

    def where(self) -> str:
        return f"{module_path(self.source)}:{self.line}"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(LIAISON.rglob("*.py"))}


def module_path(name: str) -> str:
    return str(modules()[name].relative_to(ROOT))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(nodes, in_function=False, type_checking=False):
    """(import node, inside a function?, under TYPE_CHECKING?) for every import in `nodes`, at any depth."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function, type_checking
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.body, in_function, True)
            yield from _import_nodes(node.orelse, in_function, type_checking)
        else:
            inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from _import_nodes(ast.iter_child_nodes(node), inner, type_checking)


def _targets(source: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The `liaison` modules an import statement loads (the submodule when a name is one)."""
    known = modules()
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = source if known[source].name == "__init__.py" else source.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    found = set()
    for name in names:
        while name and name not in known:  # `import liaison.case.service.x` style: the longest module
            name = name.rpartition(".")[0]
        if name and name != source:
            found.add(name)
    return found


def module_edges(source: str, text: str) -> list[Edge]:
    """Every import of a `liaison` module in `text`, the source of module `source`."""
    found = []
    for node, in_function, type_checking in _import_nodes(ast.parse(text).body):
        for target in sorted(_targets(source, node)):
            found.append(Edge(source, target, node.lineno, node.end_lineno or node.lineno,
                              in_function, type_checking))
    return found


@lru_cache(maxsize=1)
def edges() -> tuple[Edge, ...]:
    return tuple(edge for source, path in modules().items()
                 for edge in module_edges(source, path.read_text(encoding="utf-8")))


def folder(module: str) -> str:
    """`case` for liaison.case.service and liaison.case; `liaison` for runtime, demo and schema."""
    parts = module.split(".")
    is_package = modules()[module].name == "__init__.py"
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and is_package) else "liaison"


def leaf(module: str) -> str:
    return module.rpartition(".")[2]


SAMPLE = """
from typing import TYPE_CHECKING

import liaison.core.db
from liaison.case import models, sqlalchemy_name
from . import lifecycle
from ..people.models import Resident

if TYPE_CHECKING:
    from liaison.messaging.models import OutboxMessage


class Handler:
    def run(self):
        from liaison.messaging import outbox  # a why-comment
        return outbox
"""


def test_the_graph_sees_hidden_relative_and_type_only_imports():
    """The checks below are only as good as the graph: it must hold the imports that hide."""
    found = {(e.target, e.line, e.in_function, e.type_checking)
             for e in module_edges("liaison.case.handling", SAMPLE)}
    assert found == {
        ("liaison.core.db", 4, False, False),
        ("liaison.case.models", 5, False, False),
        ("liaison.case", 5, False, False),  # a name that is no module: the package itself
        ("liaison.case.lifecycle", 6, False, False),
        ("liaison.people.models", 7, False, False),
        ("liaison.messaging.models", 10, False, True),
        ("liaison.messaging.outbox", 15, True, False),
    }
    assert len({e.source for e in edges()}) > 20  # and it reads the real package


def test_no_import_cycle_between_liaison_modules():
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    lines: dict[tuple[str, str], Edge] = {}
    for edge in edges():
        if not edge.type_checking:
            graph[edge.source].add(edge.target)
            lines.setdefault((edge.source, edge.target), edge)
    # TopologicalSorter wants predecessors; a cycle is a cycle either way round.
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        cycle = list(reversed(error.args[1]))  # importer first
        steps = [f"{a} imports {b} ({lines[a, b].where()})" for a, b in zip(cycle, cycle[1:])]
        pytest.fail("import cycle:\n  " + "\n  ".join(steps))


MODEL_MODULES = sorted(name for name in modules() if leaf(name) == "models")


@pytest.mark.parametrize("module", MODEL_MODULES)
def test_model_modules_import_only_core_and_other_models(module):
    bad = sorted(f"{e.where()} imports {e.target}" for e in edges() if e.source == module
                 and not (folder(e.target) == "core" or leaf(e.target) == "models"))
    assert not bad, "\n".join(bad)


def _order_violation(edge: Edge) -> bool:
    source, target = folder(edge.source), folder(edge.target)
    if source in FLOOR:
        return target not in FLOOR
    if source not in DOMAINS or target not in DOMAINS or source == target:
        return False
    return leaf(edge.target) not in SHARED_LEAVES and DOMAINS.index(target) > DOMAINS.index(source)


@pytest.mark.parametrize("domain", FLOOR + DOMAINS)
def test_services_import_only_earlier_domains(domain):
    """people → messaging → case → engagement → conversation; models and lifecycle from anywhere;
    core and wechat are the floor and import no domain."""
    bad = sorted(f"{e.where()} imports {e.target}" for e in edges()
                 if folder(e.source) == domain and _order_violation(e))
    assert not bad, "\n".join(bad)


def test_the_order_check_refuses_a_later_service():
    refused = Edge("liaison.messaging.outbox", "liaison.case.service", 1, 1, False, False)
    allowed = [Edge("liaison.messaging.outbox", "liaison.case.models", 1, 1, False, False),
               Edge("liaison.conversation.service", "liaison.case.service", 1, 1, False, False),
               Edge("liaison.people.service", "liaison.case.lifecycle", 1, 1, False, False)]
    assert _order_violation(refused) and not any(_order_violation(e) for e in allowed)
    assert _order_violation(Edge("liaison.core.db", "liaison.people.models", 1, 1, False, False))


# A tool directive (noqa, type: ignore, pragma) silences a tool; it does not say why.
DIRECTIVES = re.compile(r"noqa(:\s*[A-Z]+[0-9]+(,\s*[A-Z]+[0-9]+)*)?|type:\s*ignore(\[[^\]]*\])?"
                        r"|pragma:\s*no\s*cover|fmt:\s*(on|off|skip)", re.IGNORECASE)


def explains(comment: str) -> bool:
    """True when a comment says something beyond tool directives."""
    return bool(re.search(r"\w", DIRECTIVES.sub("", comment.lstrip("#"))))


def comment_lines(path: Path) -> set[int]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    return {tok.start[0] for tok in tokens if tok.type == tokenize.COMMENT and explains(tok.string)}


def test_a_tool_directive_alone_explains_nothing():
    assert not explains("# noqa: F401") and not explains("# type: ignore[attr-defined]")
    assert explains("# noqa: F401  (relationship targets)") and explains("# 避免循环导入")


def unexplained_function_level_imports(folder_name: str) -> list[str]:
    bad = []
    for edge in edges():
        if edge.in_function and folder(edge.source) == folder_name:
            comments = comment_lines(modules()[edge.source])
            if not comments & set(range(edge.line - 1, edge.end_line + 1)):
                bad.append(f"{edge.where()} imports {edge.target}")
    return sorted(set(bad))


@pytest.mark.parametrize("folder_name", ("liaison",) + FLOOR + DOMAINS)
def test_function_level_imports_of_liaison_say_why(folder_name):
    """An import inside a function hides a dependency (and often a circle): the comment says why it
    cannot be at the top of the module (on the import's line or the line above)."""
    bad = unexplained_function_level_imports(folder_name)
    assert not bad, "\n".join(bad)
