"""Every place omni_rl.cpu touches a verl internal, named and checked (verl 0.9.1).

1. `add_rollout_adapter`: verl resolves the in-trainer rollout adapter through the private dict
   `verl.workers.rollout.base._ROLLOUT_REGISTRY[(name, mode)] -> "pkg.mod.Class"` and offers no public
   register() for it (the replica side has `RolloutReplicaRegistry.register`, which we use).
2. `patch_gloo_process_group`: `verl.utils.distributed.initialize_global_process_group_ray` builds the
   backend string `f"cpu:gloo,{device}:{backend}"`, which for device "cpu" is "cpu:gloo,cpu:gloo" and
   torch rejects ("Duplicate device type cpu"). The wrapper passes "cpu:gloo" when the device is CPU.
3. `patch_torchrun_process_group`: the same string is hard-coded (no backend argument) in
   `verl.utils.distributed.initialize_global_process_group`, which verl's SFT trainer calls under torchrun
   (`verl.trainer.sft_trainer.run_sft` imports it at call time). On CPU the wrapper initialises the process
   group with "cpu:gloo" and returns what the original returns (local_rank, rank, world_size).

The platform-independent patches (reward keys in step metrics, rollout errors surfaced) live in
`omni_rl/rl/patches.py`, installed lazily by `omni_rl.rl` (and by the CPU plug-in) on every platform.

`tests/cpu/test_patches.py` and `tests/cpu/test_patches_learn.py` fail loudly if a verl upgrade renames or
reshapes any target.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

ADAPTER_FQN = "omni_rl.cpu.rollout.HFCpuServerAdapter"
# verl modules that do `from verl.utils.distributed import initialize_global_process_group_ray`
BINDING_MODULES = ("verl.workers.engine_workers", "verl.checkpoint_engine.base")
_PATCHED_FLAG = "__omni_rl_cpu_patched__"


def add_rollout_adapter(name: str, fqn: str = ADAPTER_FQN, mode: str = "async") -> None:
    """Map verl rollout `name` to our adapter class in verl's private `_ROLLOUT_REGISTRY`."""
    from verl.workers.rollout import base

    registry = getattr(base, "_ROLLOUT_REGISTRY", None)
    if not isinstance(registry, dict) or ("vllm", "async") not in registry:
        raise RuntimeError(
            "verl.workers.rollout.base._ROLLOUT_REGISTRY is gone or reshaped (verl upgrade?): "
            "omni_rl.cpu cannot register its rollout adapter; see omni_rl/cpu/patches.py"
        )
    registry[(name, mode)] = fqn


def _cpu_backend_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap verl's process-group initialiser so a CPU device gets the single backend "cpu:gloo"."""

    @functools.wraps(original)
    def initialize_global_process_group_ray(timeout_second: Any = None, backend: str | None = None) -> Any:
        from verl.utils.device import get_device_name

        if backend is None and get_device_name() == "cpu":
            backend = "cpu:gloo"
        return original(timeout_second=timeout_second, backend=backend)

    setattr(initialize_global_process_group_ray, _PATCHED_FLAG, True)
    return initialize_global_process_group_ray


def patch_gloo_process_group() -> None:
    """Install the wrapper in `verl.utils.distributed` and in modules that already imported it by name.

    Run from the plug-in, i.e. while `import verl` runs and before verl's workers import the function,
    so `from verl.utils.distributed import initialize_global_process_group_ray` picks up the wrapper.
    """
    import inspect
    import sys

    from verl.utils import distributed

    original = getattr(distributed, "initialize_global_process_group_ray", None)
    if original is None or list(inspect.signature(original).parameters) != ["timeout_second", "backend"]:
        raise RuntimeError(
            "verl.utils.distributed.initialize_global_process_group_ray changed (verl upgrade?): "
            "omni_rl.cpu cannot fix its CPU backend string; see omni_rl/cpu/patches.py"
        )
    if getattr(original, _PATCHED_FLAG, False):
        return
    wrapped = _cpu_backend_wrapper(original)
    distributed.initialize_global_process_group_ray = wrapped
    for name in BINDING_MODULES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "initialize_global_process_group_ray", None) is original:
            module.initialize_global_process_group_ray = wrapped


def _cpu_torchrun_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap verl's torchrun initialiser: on CPU, one "cpu:gloo" backend; elsewhere verl's own code."""

    @functools.wraps(original)
    def initialize_global_process_group(timeout_second: int = 36000) -> tuple[int, int, int]:
        import os
        from datetime import timedelta

        import torch.distributed
        from verl.utils.device import get_device_name

        if get_device_name() != "cpu":
            return original(timeout_second=timeout_second)
        torch.distributed.init_process_group(
            backend="cpu:gloo",
            timeout=timedelta(seconds=timeout_second),
            init_method=os.environ.get("DIST_INIT_METHOD", None),
        )
        return int(os.environ["LOCAL_RANK"]), int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])

    setattr(initialize_global_process_group, _PATCHED_FLAG, True)
    return initialize_global_process_group


def patch_torchrun_process_group() -> None:
    """Install the torchrun wrapper in `verl.utils.distributed` (the SFT trainer imports it at call time)."""
    import inspect

    from verl.utils import distributed

    original = getattr(distributed, "initialize_global_process_group", None)
    if original is None or list(inspect.signature(original).parameters) != ["timeout_second"]:
        raise RuntimeError(
            "verl.utils.distributed.initialize_global_process_group changed (verl upgrade?): "
            "omni_rl.cpu cannot fix the SFT trainer's CPU backend string; see omni_rl/cpu/patches.py"
        )
    if not getattr(original, _PATCHED_FLAG, False):
        distributed.initialize_global_process_group = _cpu_torchrun_wrapper(original)
