"""Import circles in the house, found from the source with ``ast`` (no code is run).

Every import counts, at module top or inside a function, except those under ``if TYPE_CHECKING:``
(type names only, never executed). Tests and migrations are left out. A circle is a set of modules
that reach each other through imports (a strongly connected component of more than one module, or a
module importing itself). ``from pkg import name`` counts as an import of ``pkg.name`` when that is a
module, else of ``pkg``. Exit status 1 when there is any circle; each is printed with one cycle through
it. Usage: ``python tools/import_circles.py [ROOT ...]`` (default: the house's packages).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("core", "xbit_admin", "wallets", "trading", "routing", "risk", "sandbox")
SKIP_PARTS = {"tests", "migrations"}


def module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def collect(base: Path, roots: tuple[str, ...]) -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for root in roots:
        for path in sorted((base / root).rglob("*.py")):
            if SKIP_PARTS & set(path.relative_to(base).parts):
                continue
            modules[module_name(path, base)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                hit = resolve(alias.name)
                if hit:
                    found.add(hit)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                hit = (
                    resolve(f"{source}.{alias.name}")
                    if f"{source}.{alias.name}" in modules
                    else resolve(source)
                )
                if hit:
                    found.add(hit)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    # a module's own package __init__ is loaded first anyway: importing it is not a dependency
    return {m for m in found if not name.startswith(m + ".")}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively; only those with a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def one_cycle(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    members = set(component)
    start = component[0]
    parent: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start] if node != start else [start, start]
            if child not in parent:
                parent[child] = node
                queue.append(child)
    return component


def main(argv: list[str]) -> int:
    base = Path(__file__).resolve().parent.parent
    roots = tuple(argv) or PACKAGES
    modules = collect(base, roots)
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    found = circles(graph)
    for component in found:
        print(f"circle of {len(component)}: " + " -> ".join(one_cycle(component, graph)))
    edges = sum(len(v) for v in graph.values())
    print(f"import circles: {len(found)} ({len(modules)} modules, {edges} imports)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
