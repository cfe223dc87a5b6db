"""The package layout's rules, read from the source with ast: the import graph between utils/, models/ and engine/
(function-level imports included), and the size of the functions in engine/."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60
# package -> packages it must never import (at module level or inside a function)
FORBIDDEN = {"utils": ("models", "engine"), "models": ("engine",)}


def _imports(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, imported module) for every import statement in the file, however deeply nested."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_graph(package):
    bad = [f"{path.relative_to(ROOT)}:{line} imports {module}"
           for path in sorted((ROOT / package).rglob("*.py"))
           for line, module in _imports(path) if _top(module) in FORBIDDEN[package]]
    assert not bad, f"{package}/ must not import {' or '.join(FORBIDDEN[package])}:\n" + "\n".join(bad)


def test_import_scan_sees_function_level_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef f():\n    if True:\n        from engine.core import trainer\n")
    assert [m for _, m in _imports(f)] == ["os", "engine.core"]


def test_engine_functions_are_at_most_60_lines():
    long = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                n = node.end_lineno - first + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}() has {n} lines")
    assert not long, f"functions in engine/ over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)
