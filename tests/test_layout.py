"""The package's floors: imports go down or across a floor, never up, never in a circle; lists of
backends are written in the registry only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# lowest first; a module's floor is the first prefix it matches, the front door is the rest
FLOORS = (
    (
        "ground",
        (
            "gradxval.errors",
            "gradxval.dtypes",
            "gradxval.numerics",
            "gradxval.sketch",
            "gradxval.version",
        ),
    ),
    ("model", ("gradxval.model", "gradxval.suite")),
    ("backends", ("gradxval.backends",)),
    ("judge", ("gradxval.judge",)),
    ("run", ("gradxval.run",)),
    ("output", ("gradxval.output",)),
    ("followup", ("gradxval.followup",)),
)
# the registries: backends (and their recipes), and the known faults scoped to libraries
REGISTRIES = ("gradxval.backends", "gradxval.judge.known_functions")


def _modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> source file of a checkout (scripts/layout_facts.py reads older ones)."""
    out = {}
    for folder, package in (("harness", "gradxval"), ("backends", "gradxval.backends")):
        for path in (root / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(root / folder).with_suffix("").parts]
            parts = [p for p in parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path, modules: dict | None = None) -> set[str]:
    """Every gradxval module ``name`` imports, at the top or inside a function (of
    ``modules``, default this checkout's)."""
    modules = MODULES if modules is None else modules
    found = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in modules and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def floor(module: str) -> int:
    for i, (_, prefixes) in enumerate(FLOORS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return len(FLOORS)  # the front doors: campaign, checking, cli, pytest_plugin


def test_every_floor_exists():
    for _, prefixes in FLOORS:
        for p in prefixes:
            assert p in MODULES, p


def test_imports_go_down_or_across_never_up():
    up = [
        f"{m} ({FLOORS[floor(m)][0]}) imports {d}"
        for m, deps in GRAPH.items()
        if floor(m) < len(FLOORS)
        for d in deps
        if floor(d) > floor(m)
    ]
    assert not up, "\n".join(up)


def test_no_import_circles():
    # Tarjan's strongly connected components; a component of two or more modules is a circle
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not circles, circles


def test_the_layout_check_sees_an_upward_import():
    # the checks above would pass vacuously if the graph missed imports: it must hold the known
    # downward edges, and a made-up upward one must be reported as such
    assert "gradxval.judge.error_model" in GRAPH["gradxval.judge.compare"]
    assert "gradxval.model.problems" in GRAPH["gradxval.backends.base"]
    assert floor("gradxval.run.runner") > floor("gradxval.judge.compare")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_backend_names_are_listed_only_in_the_registry(module):
    if any(module == r or module.startswith(r + ".") for r in REGISTRIES):
        return
    from gradxval.backends import BUILTIN

    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        items = []
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        names = {e.value for e in items if isinstance(e, ast.Constant)} & set(BUILTIN)
        assert len(names) < 2, f"{module}:{node.lineno} lists backends {sorted(names)}"
