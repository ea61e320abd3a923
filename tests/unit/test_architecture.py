"""The package's shape, checked from source: data flows one way through the role subpackages.

Every `gp_distributed` import is read from the AST, function-local and TYPE_CHECKING imports included,
so a circle cannot hide inside a function body.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gp_distributed"

# A module may import only from layers listed before its own (or from its own subpackage, without a
# circle). Root modules each form their own layer.
LAYERS = (
    "errors", "hashing", "console", "config_yaml", "config", "checkpoint", "ontology", "data", "ingest", "synthetic", "model",
    "evaluation", "inference", "tracking", "train", "commands", "cli",
)
MAX_LINES = 420


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The gp_distributed modules `path` imports (`from gp_distributed import x` counts as module x)."""
    modules: set[str] = set()
    known = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gp_distributed"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                modules.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            modules |= {a.name for a in node.names if a.name.startswith("gp_distributed")}
    return {m for m in modules if m != "gp_distributed"}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_every_module_belongs_to_a_layer() -> None:
    assert {_layer(m) for m in _graph() if m != "gp_distributed"} <= set(LAYERS)


def test_no_module_imports_a_layer_above_its_own() -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = [f"{m} -> {d}" for m, deps in _graph().items() if m != "gp_distributed" for d in deps
              if rank[_layer(d)] > rank[_layer(m)]]
    assert upward == []


def test_no_import_circle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                pytest.fail("import circle: " + " -> ".join(path[path.index(dep):] + [node, dep]))
            if dep not in state:
                visit(dep, path + [node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_files_stay_small() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_checker_sees_a_function_local_circle(tmp_path: Path) -> None:
    source = "def f():\n    from gp_distributed.train.worker import train\n"
    (tmp_path / "m.py").write_text(source)
    assert "gp_distributed.train.worker" in _imports(tmp_path / "m.py")
