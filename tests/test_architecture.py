"""The package layout's rules, read from the source with ast: one installable `yolobone` package whose layers import
only downwards (function-level imports included), no import cycles between files, and a function-size cap."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "yolobone"
MAX_FUNCTION_LINES = 60
# Layers, lowest first. A module may import its own layer's package and any lower layer, never a higher one or a
# sibling of the same rank (data vs models, detect vs classify, backends vs export).
LAYERS: List[Tuple[str, int]] = [
    ("yolobone.utils", 0),
    ("yolobone.data", 1), ("yolobone.models", 1),
    ("yolobone.engine.core", 2),
    ("yolobone.engine.backends", 3),
    ("yolobone.engine.detect", 4), ("yolobone.engine.classify", 4),
    ("yolobone.engine.export", 5),  # above the tasks: an export is scored (INT8 calibration) by the task's validator
    ("yolobone.engine", 6),  # engine/train.py (the task dispatch)
    ("yolobone.engine.compare", 7),  # trains through engine/train.py
    ("yolobone.cli", 8), ("yolobone.__main__", 9),
]


def _type_checking_nodes(tree: ast.AST) -> Set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:` (never run, so no runtime dependency)."""
    skip: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def _imports(path: Path, module: str = "") -> Iterator[Tuple[int, str]]:
    """(line, imported module) for every import statement in the file, however deeply nested (`if TYPE_CHECKING:`
    blocks excepted); relative imports are resolved against `module` (the file's dotted name)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[:-node.level] if module else []
                base = ".".join(parts + ([base] if base else []))
            if base:
                yield node.lineno, base
                for alias in node.names:  # `from yolobone.engine.compare import jobs` imports a module too
                    yield node.lineno, f"{base}.{alias.name}"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> Optional[Tuple[str, int]]:
    """The most specific layer holding `module` (None: not ours)."""
    best = None
    for prefix, rank in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, rank)
    return best


def _our_modules() -> Dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _edges() -> Dict[str, Set[str]]:
    """module -> the modules of ours it imports (a `from pkg import name` counts where pkg.name is a module)."""
    ours = _our_modules()
    edges: Dict[str, Set[str]] = {}
    for name, path in ours.items():
        targets = {m for _, m in _imports(path, name if path.name != "__init__.py" else name + ".__init__")}
        edges[name] = {t for t in targets if t in ours and t != name}
    return edges


def layer_violations() -> List[str]:
    """One line per import statement that reaches a higher layer or a sibling of the same rank."""
    bad: Dict[Tuple[str, int], str] = {}
    for name, path in _our_modules().items():
        own = _layer(name)
        for line, target in _imports(path, name if path.name != "__init__.py" else name + ".__init__"):
            other = _layer(target)
            if own is None or other is None or other[0] == own[0] or target == "yolobone":
                continue
            if other[1] > own[1] or (other[1] == own[1] and not own[0].startswith(other[0] + ".")):
                where = str(path.relative_to(ROOT))
                bad.setdefault((where, line), f"{where}:{line} ({own[0]}) imports {other[0]}")
    return list(bad.values())


def import_cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    groups: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


# Left from before the yolobone/ layout (issue 31's remaining steps). Each must disappear, never grow: a test fails
# on a new one and on a listed one that is gone, so the list only shrinks.
KNOWN_CYCLES: List[List[str]] = []
KNOWN_LONG_FUNCTIONS = [
    "yolobone/models/parse.py parse_model()",
]


def _package_init_edges_removed(edges: Dict[str, Set[str]]) -> Dict[str, Set[str]]:
    """A package's __init__ re-exporting its submodules is not a cycle with them: drop submodule -> own parent."""
    return {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in edges.items()}


def test_layers_import_only_downwards():
    bad = layer_violations()
    assert not bad, "imports against the layer order (tests/test_architecture.py LAYERS):\n" + "\n".join(bad)


def test_no_import_cycles_between_files():
    cycles = import_cycles(_package_init_edges_removed(_edges()))
    new = [c for c in cycles if c not in KNOWN_CYCLES]
    gone = [c for c in KNOWN_CYCLES if c not in cycles]
    assert not new, "import cycles (function-level imports included):\n" + "\n".join(" <-> ".join(c) for c in new)
    assert not gone, f"fixed cycles still listed in KNOWN_CYCLES (remove them): {gone}"


def test_no_top_level_models_or_utils_package():
    stray = [d for d in ("models", "utils", "engine", "data") if (ROOT / d / "__init__.py").exists()]
    assert not stray, f"top-level packages {stray}: everything installable lives under yolobone/"


def cross_test_imports(tests_dir: Path = ROOT / "tests") -> List[str]:
    """Test modules that import another test module (shared code belongs in tests/helpers.py or a fixture)."""
    bad = []
    for path in sorted(tests_dir.glob("*.py")):
        for line, module in _imports(path, f"tests.{path.stem}"):
            if module.rsplit(".", 1)[-1].startswith("test_"):
                bad.append(f"{path.name}:{line} imports {module}")
    return bad


TASK_FILES = {"__init__.py", "task.py", "options.py", "validator.py", "val_run.py", "predictor.py", "predict_run.py",
              "results.py", "plots.py"}


def test_task_halves_mirror_each_other():
    """detect/ and classify/ hold the same files, one job each; detect/ adds only its own metrics and helpers."""
    halves = {t: {f.name for f in (PACKAGE / "engine" / t).glob("*.py")} for t in ("detect", "classify")}
    assert halves["classify"] == TASK_FILES, sorted(halves["classify"] ^ TASK_FILES)
    assert TASK_FILES <= halves["detect"], sorted(TASK_FILES - halves["detect"])


def trainer_attribute_writes(source: str, name: str = "t") -> List[Tuple[int, str]]:
    """(line, attribute) of every assignment to `<name>.<attribute>` (the Trainer a task hook receives)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in (e for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])):
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == name:
                found.append((target.lineno, target.attr))
    return found


def trainer_declared() -> Set[str]:
    """The attributes the Trainer itself assigns (self.X anywhere in trainer.py)."""
    return {a for _, a in trainer_attribute_writes((PACKAGE / "engine/core/trainer.py").read_text(), "self")}


SETUP_RESULTS = {"data", "names", "nc", "frozen", "train_loader", "val_loader", "train_set", "problems", "criterion",
                 "compute_loss"}  # TaskData, Loaders, LossSetup and setup_model's return value


def test_task_plugins_return_their_setup_instead_of_setting_trainer_attributes():
    declared = trainer_declared()
    assert SETUP_RESULTS <= declared
    for half in ("detect", "classify"):
        writes = trainer_attribute_writes((PACKAGE / "engine" / half / "task.py").read_text())
        bad = [f"{half}/task.py:{line} sets t.{attr}" for line, attr in writes
               if attr not in declared or attr in SETUP_RESULTS]
        assert not bad, "a task hook returns what the Trainer keeps (TaskData, Loaders, LossSetup):\n" + "\n".join(bad)


def test_trainer_attribute_scan_sees_plain_tuple_and_annotated_writes():
    src = "def f(t):\n    t.data = 1\n    t.a, t.b = 2, 3\n    t.c: int = 4\n    t.d += 1\n    t.model.x = 5\n"
    assert trainer_attribute_writes(src) == [(2, "data"), (3, "a"), (3, "b"), (4, "c"), (5, "d")]


def test_tests_do_not_import_each_other():
    bad = cross_test_imports()
    assert not bad, "test modules importing test modules (move the shared code to tests/helpers.py):\n" + \
        "\n".join(bad)


def test_functions_are_at_most_60_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                n = node.end_lineno - first + 1
                if n > MAX_FUNCTION_LINES:
                    long.append((f"{path.relative_to(ROOT)} {node.name}()", n))
    new = [f"{where} has {n} lines" for where, n in long if where not in KNOWN_LONG_FUNCTIONS]
    gone = sorted(set(KNOWN_LONG_FUNCTIONS) - {where for where, _ in long})
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(new)
    assert not gone, f"shortened functions still listed in KNOWN_LONG_FUNCTIONS (remove them): {gone}"


# The checkers themselves, on a small tree: each rule fails when broken.

def test_import_scan_sees_function_level_and_relative_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef f():\n    if True:\n        from yolobone.engine.core import trainer\n"
                 "from . import sibling\n")
    f.write_text(f.read_text() + "if TYPE_CHECKING:\n    from yolobone.engine import compare\n")
    assert sorted(m for _, m in _imports(f, "yolobone.data.m")) == [
        "os", "yolobone.data", "yolobone.data.sibling", "yolobone.engine.core", "yolobone.engine.core.trainer"]


def test_layer_lookup_takes_the_most_specific_package():
    assert _layer("yolobone.engine.detect.task") == ("yolobone.engine.detect", 4)
    assert _layer("yolobone.engine.train") == ("yolobone.engine", 6)
    assert _layer("yolobone.engine.compare.run") == ("yolobone.engine.compare", 7)
    assert _layer("yolobone.models.backbones.resnet") == ("yolobone.models", 1)
    assert _layer("torch.nn") is None


def test_test_import_check_fails_on_a_test_importing_a_test(tmp_path):
    (tmp_path / "test_a.py").write_text("def f():\n    from test_b import helper\n")
    (tmp_path / "test_c.py").write_text("from tests.helpers import tiny_cfg\n")
    assert cross_test_imports(tmp_path) == ["test_a.py:2 imports test_b"]


def test_cycle_finder_finds_a_two_file_cycle():
    assert import_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_layer_check_fails_on_a_reverse_import(tmp_path, monkeypatch):
    """Plant a utils -> engine import in a copy of the layout: the layer check reports it."""
    pkg = tmp_path / "yolobone"
    (pkg / "utils").mkdir(parents=True)
    (pkg / "engine" / "core").mkdir(parents=True)
    for d in (pkg, pkg / "utils", pkg / "engine", pkg / "engine" / "core"):
        (d / "__init__.py").write_text("")
    (pkg / "engine" / "core" / "trainer.py").write_text("from yolobone.utils import tool\n")
    (pkg / "utils" / "tool.py").write_text("def f():\n    from yolobone.engine.core import trainer\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGE", pkg)
    bad = layer_violations()
    assert bad == ["yolobone/utils/tool.py:2 (yolobone.utils) imports yolobone.engine.core"]
    cycles = import_cycles(_package_init_edges_removed(_edges()))
    assert cycles == [["yolobone.engine.core.trainer", "yolobone.utils.tool"]]
