"""The house's structure, checked from the source (no code imported, no database): module sizes in
the rooms, no private name imported across modules, no import circle (``tools/import_circles.py``).

Runs in ``make lint`` (``-p no:django``) and with the suite."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOUSE = ("core", "xbit_admin", "wallets", "trading", "routing", "risk")
SIZED_ROOMS = ("trading", "risk", "wallets")
MAX_LINES = 600


def _modules(roots: tuple[str, ...], *, tests: bool) -> list[Path]:
    out = []
    for root in roots:
        for path in sorted((ROOT / root).rglob("*.py")):
            parts = set(path.relative_to(ROOT).parts)
            if "migrations" in parts or (not tests and "tests" in parts):
                continue
            out.append(path)
    return out


def test_no_module_in_trading_risk_or_wallets_is_over_600_lines() -> None:
    """Tests included, migrations excepted."""
    too_long = {
        str(path.relative_to(ROOT)): n
        for path in _modules(SIZED_ROOMS, tests=True)
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"


def _private_imports(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in HOUSE:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.module}.{alias.name}")
    return found


def test_no_private_name_is_imported_across_modules() -> None:
    """A name another module needs is public: ``from trading.x import _helper`` is refused (tests
    excepted: they may reach into a module they test)."""
    found = [hit for path in _modules(HOUSE, tests=False) for hit in _private_imports(path)]
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_the_private_import_check_sees_one(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text("from trading.orders.state import _attnames, public\nfrom os import _exit\n")
    assert _private_imports(module, tmp_path) == ["probe.py:1 trading.orders.state._attnames"]


def _unexplained_function_imports(path: Path, root: Path = ROOT) -> list[str]:
    """Imports inside a function without a stated reason: a comment on one of the block's import lines,
    or on the lines just above the block (a run of consecutive import statements). A circle is never
    the reason: the circle check fails on it anyway."""
    text = path.read_text()
    lines = text.splitlines()
    found = []
    for fn in ast.walk(ast.parse(text, str(path))):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for holder in ast.walk(fn):
            for field in ("body", "orelse", "finalbody"):
                body = getattr(holder, field, None)
                if not isinstance(body, list):
                    continue
                previous_end = holder.lineno if holder is fn else None
                run: list[ast.stmt] = []
                for stmt in [*body, None]:
                    if isinstance(stmt, ast.Import | ast.ImportFrom):
                        run.append(stmt)
                        continue
                    if run:
                        first, last = run[0].lineno, run[-1].end_lineno or run[-1].lineno
                        above = range((previous_end or first - 1), first - 1)
                        if not any("#" in lines[i] for i in [*above, *range(first - 1, last)]):
                            found += [
                                f"{path.relative_to(root)}:{s.lineno} {lines[s.lineno - 1].strip()}"
                                for s in run
                            ]
                        run = []
                    if stmt is not None:
                        previous_end = stmt.end_lineno
    return found


def test_an_import_inside_a_function_says_why() -> None:
    found = [hit for path in _modules(HOUSE, tests=False) for hit in _unexplained_function_imports(path)]
    assert not found, "imports inside functions without a stated reason:\n" + "\n".join(found)


def test_the_function_import_check_reads_reasons(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text(
        "def a():\n    from os import path\n    return path\n\n"
        "def b():\n    # the app registry is ready only here\n    from os import path\n    import sys\n"
        "    return path, sys\n\n"
        "def c():\n    from os import sep  # optional: only on this platform\n    return sep\n"
    )
    assert _unexplained_function_imports(module, tmp_path) == ["probe.py:2 from os import path"]


def _circles_tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("import_circles", ROOT / "tools" / "import_circles.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_circles"] = module
    spec.loader.exec_module(module)
    return module


def test_the_house_has_no_import_circle(capsys: pytest.CaptureFixture[str]) -> None:
    assert _circles_tool().main([]) == 0, capsys.readouterr().out


def test_the_circle_finder_finds_a_circle_and_its_path() -> None:
    tool = _circles_tool()
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert tool.circles(graph) == [["a", "b", "c"]]
    assert tool.one_cycle(["a", "b", "c"], graph) == ["a", "b", "c", "a"]
    assert tool.circles({"x": {"y"}, "y": set()}) == []


def test_imports_inside_functions_and_type_checking_blocks_are_told_apart(tmp_path: Path) -> None:
    tool = _circles_tool()
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import c\n"
        "def f():\n    from pkg.b import g\n"
    )
    (tmp_path / "pkg" / "b.py").write_text("from pkg import a\ndef g(): ...\n")
    (tmp_path / "pkg" / "c.py").write_text("import pkg.a\n")
    modules = tool.collect(tmp_path, ("pkg",))
    graph = {name: tool.imports_of(name, path, modules) for name, path in modules.items()}
    assert graph["pkg.a"] == {"pkg.b"}  # the function's import counts, the type-only one does not
    assert tool.circles(graph) == [["pkg.a", "pkg.b"]]
