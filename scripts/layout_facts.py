"""The package's layout as numbers: folders, module sizes, import circles and upward imports.

    python scripts/layout_facts.py [ROOT ...]

ROOT is a checkout (default: this one); harness/ is the package gradxval, backends/ is
gradxval.backends, as pyproject maps them.  Give an older checkout (`git worktree add`) to
compare layouts.  Imports are read from the source (top level and inside functions), as
tests/test_layout.py reads them; floors are that test's, so "upward" means something only for a
checkout that has them.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_layout import FLOORS, floor  # noqa: E402  (the floors, defined once)
from test_layout import _imports as imports  # noqa: E402
from test_layout import _modules as modules  # noqa: E402


def code_lines(path: Path) -> int:
    """Lines holding code: no blank line, comment or docstring."""
    import io
    import tokenize

    src = path.read_text()
    doc = set()
    for node in ast.walk(ast.parse(src)):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and body and isinstance(body[0], ast.Expr)
                and isinstance(getattr(body[0], "value", None), ast.Constant)
                and isinstance(body[0].value.value, str)):  # fmt: skip
            doc.update(range(body[0].lineno, body[0].end_lineno + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING, tokenize.ENDMARKER}  # fmt: skip
    code = set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in skip:
            code.update(range(tok.start[0], tok.end[0] + 1))
    return len(code - doc)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def report(root: Path) -> None:
    mods = modules(root)
    lines = {m: len(p.read_text().splitlines()) for m, p in mods.items()}
    graph = {m: imports(m, p, mods) for m, p in mods.items()}
    print(f"## {root}\n")
    folders = Counter()
    sizes = Counter()
    for m, p in mods.items():
        rel = p.parent.relative_to(root).as_posix()
        folders[rel] += 1
        sizes[rel] += lines[m]
    print("| folder | modules | lines |\n|---|---|---|")
    for rel in sorted(folders):
        print(f"| {rel}/ | {folders[rel]} | {sizes[rel]:,} |")
    print(f"| all | {len(mods)} | {sum(lines.values()):,} |\n")
    big = sorted(lines.items(), key=lambda kv: -kv[1])[:8]
    print("largest: " + ", ".join(f"{m.removeprefix('gradxval.')} {n}" for m, n in big))
    for m in ("gradxval.cli", "gradxval.pytest_plugin", "gradxval.campaign"):
        if m in lines:
            print(f"{m.removeprefix('gradxval.')}: {lines[m]} lines")
    backends = sorted((root / "backends").glob("*_backend.py"))
    print("backend lines of code (no blank line, comment or docstring): "
          + ", ".join(f"{p.stem} {code_lines(p)}" for p in backends))  # fmt: skip
    cs = circles(graph)
    print(f"import circles: {len(cs)}" + "".join(f"\n  {' <-> '.join(c)}" for c in cs))
    layered = any(floor(m) < len(FLOORS) for m in mods)
    if layered:
        up = [(a, b) for a, bs in graph.items() for b in bs if floor(b) > floor(a)]
        print(f"upward imports (floors of tests/test_layout.py): {len(up)}")
    else:
        print("upward imports: no floors in this layout")
    edges = sum(len(v) for v in graph.values())
    print(f"import edges between gradxval modules: {edges}\n")


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path(__file__).resolve().parents[1]]
    for root in roots:
        report(root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
