"""The design card's layering, checked on the source: the domain is Flask-free, the classifier is
pure, the web layers and the jobs never import each other."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "liaison": {"flask", "werkzeug", "bot", "miniprogram_api", "webapp", "jobs"},
    "classifiers": {"flask", "sqlalchemy", "redis", "rq", "liaison", "bot", "miniprogram_api", "jobs", "webapp"},
    "jobs": {"flask", "bot", "miniprogram_api", "webapp"},
    "bot": {"miniprogram_api", "jobs"},
    "miniprogram_api": {"bot", "jobs"},
}


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
