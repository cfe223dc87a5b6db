"""One base class for our errors: every `...Error` class in yolobone/ derives from YoloboneError and keeps its builtin
base, and the command-line wrapper turns any YoloboneError into one line and exit code 2."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import List, Tuple

from yolobone.utils.cli import run_cli
from yolobone.utils.errors import YoloboneError, error_summary

PACKAGE = Path(__file__).resolve().parents[1] / "yolobone"


def _error_classes() -> List[Tuple[str, str]]:
    """(module, class name) of every class named ...Error defined at the top level of a yolobone module."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error") and node.name != "YoloboneError":
                found.append((module, node.name))
    return found


def test_every_error_class_derives_from_yolobone_error_and_keeps_a_builtin_base():
    classes = _error_classes()
    assert len(classes) >= 20  # the scan sees the package (27 classes when this test was written)
    bad = []
    for module, name in classes:
        cls = getattr(importlib.import_module(module), name)
        if not issubclass(cls, YoloboneError) or not issubclass(cls, ValueError):
            bad.append(f"{module}.{name}")
    assert not bad, f"error classes outside YoloboneError / ValueError: {bad}"


def test_run_cli_turns_any_yolobone_error_into_exit_code_2(capsys):
    class NotAValueError(YoloboneError):
        pass

    def job() -> None:
        raise NotAValueError("data.yaml:3: 'val' is missing\nsecond line")

    assert run_cli(job, errors=()) == 2
    assert capsys.readouterr().err == "error: data.yaml:3: 'val' is missing\n"


def test_error_summary_names_the_class_and_the_first_line():
    assert error_summary(ValueError("bad value\nmore")) == "ValueError: bad value"
    assert error_summary(KeyError()) == "KeyError"
    assert len(error_summary(ValueError("x" * 500), limit=40)) == 40
