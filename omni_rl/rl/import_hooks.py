"""Post-import hooks: run a function on a module right after its first import, or now if already imported.

Why: omni-rl's verl patches must reach verl's trainer modules in every process, but `omni_rl.rl` is
imported by `import verl` itself (VERL_USE_EXTERNAL_MODULES), before other plug-ins -- e.g. the CPU
platform -- have registered. Importing the trainer there would resolve verl's platform too early, so the
patches wait, on `sys.meta_path`, for whoever imports the target first.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType

Hook = Callable[[ModuleType], None]

_LOCK = threading.RLock()
_PENDING: dict[str, list[Hook]] = {}


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a watched name it asks the other finders, then chains the loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """The spec the other finders give, its loader's exec_module followed by the pending hooks."""
        if fullname not in _PENDING:
            return None
        spec = _spec_from_others(self, fullname, path, target)
        loader = getattr(spec, "loader", None)
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            _run_pending(fullname, module)

        # An instance attribute: the loader keeps its type (inspect, linecache and reload still work);
        # path-based loaders are made per module, so no other module sees this.
        loader.exec_module = exec_module
        return spec


def _spec_from_others(
    me: object, fullname: str, path: Sequence[str] | None, target: ModuleType | None
) -> importlib.machinery.ModuleSpec | None:
    """What the import system would find without this finder."""
    for finder in list(sys.meta_path):
        find = getattr(finder, "find_spec", None)
        if finder is me or find is None:
            continue
        spec = find(fullname, path, target)
        if spec is not None:
            return spec
    return None


_FINDER = _PostImportFinder()


def _run_pending(name: str, module: ModuleType) -> None:
    """Run (once) the hooks waiting for `name`; they stay pending if the import itself failed earlier."""
    with _LOCK:
        hooks = _PENDING.pop(name, [])
    for hook in hooks:
        hook(module)


def when_imported(name: str, hook: Hook) -> None:
    """Call `hook(module)` once `name` is imported: now if it already is, else right after its first import.

    The hook runs before the importer's `from name import x` binds x, so a replaced function is what every
    importer sees. A hook that raises makes that import fail (a verl upgrade that reshaped a target).
    """
    module = sys.modules.get(name)
    if module is not None:
        hook(module)
        return
    with _LOCK:
        _PENDING.setdefault(name, []).append(hook)
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)


def pending() -> dict[str, int]:
    """Module names still awaited, with how many hooks each (diagnostics and tests)."""
    with _LOCK:
        return {name: len(hooks) for name, hooks in _PENDING.items()}
