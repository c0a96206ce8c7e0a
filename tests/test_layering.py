"""Issue 13 layering rules, checked on the source: data stays model-free, production never imports testing,
`omni_rl.api` / `omni_rl.bon` do not import each other in a cycle, and no omni_rl modules (or the
subpackages named below) import each other in a circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "omni_rl"
# "omni_rl.x.y" or "omni_rl.x.y:attr": an import spec when passed to an importer or put in a dispatch table
IMPORT_STRING = re.compile(r"^(omni_rl(?:\.\w+)+)(?::[\w.]+)?$")
IMPORTERS = {"import_module", "__import__", "import_callable"}


def _string_imports(tree: ast.AST) -> set[str]:
    """Module names in import strings: importer arguments, dispatch-table literals, "module:attr" specs."""
    spots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            spots += node.args if name in IMPORTERS else []
        elif isinstance(node, (ast.Dict, ast.Tuple, ast.List, ast.Set)):
            spots += [n for n in ast.iter_child_nodes(node)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value:
            spots.append(node)
    values = [n.value for n in spots if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return {m.group(1) for v in values if (m := IMPORT_STRING.match(v))}


def _imports(path: Path, module: str = "") -> set[str]:
    """Every module name a file imports: top level, inside functions, and through import strings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = _string_imports(tree)
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            found.update(f"{base}.{a.name}" for a in node.names)  # the graph maps a non-module to `base`
    return found


def _offenders(files: list[Path], banned: tuple[str, ...]) -> list[str]:
    return [
        f"{f.relative_to(PKG.parent)} imports {m}"
        for f in files
        for m in sorted(_imports(f))
        if any(m == b or m.startswith(b + ".") for b in banned)
    ]


def test_production_code_never_imports_the_testing_package() -> None:
    files = [f for f in PKG.rglob("*.py") if "testing" not in f.relative_to(PKG).parts]
    assert _offenders(files, ("omni_rl.testing",)) == []


@pytest.mark.parametrize("higher", ["omni_rl.judge", "omni_rl.rewards", "omni_rl.eval", "omni_rl.bon",
                                    "omni_rl.curate", "omni_rl.api", "omni_rl.rm"])  # fmt: skip
def test_data_imports_nothing_above_it(higher: str) -> None:
    assert _offenders(list((PKG / "data").rglob("*.py")), (higher,)) == []


def test_no_api_bon_import_cycle() -> None:
    assert _offenders(list((PKG / "bon").rglob("*.py")), ("omni_rl.api",)) == []
    assert _offenders(list((PKG / "rm").rglob("*.py")), ("omni_rl.api",)) == []


def test_the_public_api_face_is_short() -> None:
    assert len((PKG / "api.py").read_text().splitlines()) < 150


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_graph() -> dict[str, set[str]]:
    """omni_rl module -> the omni_rl modules it imports (a name that is no module maps to its nearest parent)."""
    files = {_module_name(p): p for p in PKG.rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        targets = {resolve(n) for n in _imports(path, mod) if n == "omni_rl" or n.startswith("omni_rl.")}
        graph[mod] = {t for t in targets if t and t != mod}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            comp = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(comp) > 1:
                found.append(sorted(comp))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_omni_rl_modules() -> None:
    assert _cycles(_module_graph()) == []


def test_the_cycle_finder_sees_function_level_imports_and_import_strings(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "import importlib\nT = {'x': ('omni_rl.a.cli', 'help')}\nS = 'omni_rl.b.mod:fn'\n"
        "def f():\n    from omni_rl.c import d\n    importlib.import_module('omni_rl.e')\n"
    )
    assert {"omni_rl.a.cli", "omni_rl.b.mod", "omni_rl.c.d", "omni_rl.e"} <= _imports(src)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Subpackage pairs the house issue named: the first may import the second, never the other way round
# (also not through a third subpackage).
ONE_WAY = [("omni_rl.bon", "omni_rl.rm"), ("omni_rl.curate", "omni_rl.data"), ("omni_rl.api", "omni_rl.rm")]


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """A package path start -> ... -> goal in the subpackage graph, or None."""
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == goal:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                paths.append([*path, nxt])
    return None


@pytest.mark.parametrize(("upper", "lower"), ONE_WAY)
def test_named_subpackages_depend_one_way(upper: str, lower: str) -> None:
    packages: dict[str, set[str]] = {}
    for mod, targets in _module_graph().items():
        packages.setdefault(_package(mod), set()).update(
            _package(t) for t in targets if _package(t) != _package(mod)
        )
    assert _reaches(packages, lower, upper) is None
