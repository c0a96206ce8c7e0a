"""Issue 13 layering rules, checked on the source: data stays model-free, production never imports testing,
and `omni_rl.api` / `omni_rl.bon` do not import each other in a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "omni_rl"


def _imports(path: Path) -> set[str]:
    """Every module name a file imports (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
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
