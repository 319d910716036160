"""Entry points read through their feature's queries and write through its commands: none opens a unit of
work of its own (the rule of ADR 0019), so that every read is a snapshot taken the same way and every
write publishes on commit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import courseinfra.entrypoints

ENTRYPOINTS = Path(courseinfra.entrypoints.__file__).parent
MODULES = sorted(ENTRYPOINTS.rglob("*.py"))


def opened_units_of_work(tree: ast.AST) -> list[int]:
    """Lines of ``with`` blocks over a call of ``uow_factory`` (``with app.uow_factory() as uow``)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                call = item.context_expr
                while isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
                    if call.func.attr == "uow_factory":
                        lines.append(node.lineno)
                        break
                    call = call.func.value
    return lines


def test_the_check_finds_an_opened_unit_of_work() -> None:
    tree = ast.parse(
        "with app.uow_factory() as uow:\n    pass\nwith app.uow_factory().reading() as uow:\n    pass\n"
    )
    assert opened_units_of_work(tree) == [1, 3]
    assert opened_units_of_work(ast.parse("publish(identifier, app.uow_factory())\n")) == []


@pytest.mark.parametrize("module", MODULES, ids=lambda path: str(path.relative_to(ENTRYPOINTS)))
def test_no_entry_point_opens_a_unit_of_work(module: Path) -> None:
    assert opened_units_of_work(ast.parse(module.read_text())) == []
