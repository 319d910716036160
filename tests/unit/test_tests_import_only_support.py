"""Test modules share code through ``tests/support`` only: a test module that imports another (or the
conftest) couples two suites, and collecting one runs the other's module-level code."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def forbidden_imports(source: str, label: str) -> list[str]:
    """The imports of ``source`` (a module, named ``label`` in the answer) that name a test module or
    the conftest."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = (
            [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else []
        )
        for name in names:
            last = name.rsplit(".", 1)[-1]
            if name.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                found.append(f"{label}:{node.lineno}: {name}")
    return found


def test_no_test_module_imports_another() -> None:
    modules = sorted(TESTS.rglob("*.py"))
    assert len(modules) > 40, "the walk finds the suite"
    problems = [
        problem
        for path in modules
        for problem in forbidden_imports(path.read_text(encoding="utf-8"), str(path.relative_to(TESTS)))
    ]
    assert problems == []


def test_the_check_finds_an_import_of_a_test_module() -> None:
    source = "from tests.integration.test_cli import Cli\nimport tests.conftest\nfrom tests.support.cli import Cli\n"
    assert forbidden_imports(source, "sample") == [
        "sample:1: tests.integration.test_cli",
        "sample:2: tests.conftest",
    ]
