"""omni_rl.rl.import_hooks on real modules written to disk and imported by Python's own import system."""

from __future__ import annotations

import importlib
import inspect
import sys
import uuid
from collections.abc import Iterator
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

import pytest

from omni_rl.rl.import_hooks import pending, when_imported


@pytest.fixture
def pkg(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A fresh, uniquely named package on sys.path: (its folder, its name)."""
    name = f"hookpkg_{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp_path))
    yield root, name
    sys.path.remove(str(tmp_path))
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]


def _double(module: ModuleType) -> None:
    """A hook like the verl patches: replace a function, marking the replacement."""
    original = module.f

    def f() -> int:
        return 2 * original()

    f.patched = True
    module.f = f
    module.calls = getattr(module, "calls", 0) + 1


def test_hook_runs_once_after_first_import_and_importers_bind_the_replacement(pkg: tuple[Path, str]) -> None:
    root, name = pkg
    (root / "target.py").write_text("def f():\n    return 21\n")
    (root / "user.py").write_text(f"from {name}.target import f\n")
    when_imported(f"{name}.target", _double)
    assert pending()[f"{name}.target"] == 1 and f"{name}.target" not in sys.modules

    user = importlib.import_module(f"{name}.user")  # imports target first: the hook runs before the binding
    target = sys.modules[f"{name}.target"]
    assert user.f() == 42 and user.f is target.f and target.calls == 1
    assert f"{name}.target" not in pending()
    importlib.import_module(f"{name}.target")  # cached: no second run
    assert target.calls == 1
    # the loader keeps its type: source lookups (tracebacks, inspect) still work
    assert type(target.__loader__) is SourceFileLoader and "return 21" in inspect.getsource(target)


def test_already_imported_module_is_hooked_at_once(pkg: tuple[Path, str]) -> None:
    root, name = pkg
    (root / "early.py").write_text("def f():\n    return 5\n")
    early = importlib.import_module(f"{name}.early")
    when_imported(f"{name}.early", _double)
    assert early.f() == 10 and early.f.patched and f"{name}.early" not in pending()


def test_failed_import_keeps_the_hook_for_the_next_import(pkg: tuple[Path, str]) -> None:
    root, name = pkg
    (root / "flaky.py").write_text("raise ImportError('not yet')\n")
    when_imported(f"{name}.flaky", _double)
    with pytest.raises(ImportError, match="not yet"):
        importlib.import_module(f"{name}.flaky")
    assert pending()[f"{name}.flaky"] == 1
    (root / "flaky.py").write_text("def f():\n    return 4\n")
    importlib.invalidate_caches()
    sys.modules.pop(f"{name}.flaky", None)
    flaky = importlib.import_module(f"{name}.flaky")  # (a different size: the stale bytecode is not used)
    assert flaky.f() == 8 and flaky.calls == 1 and f"{name}.flaky" not in pending()
