"""verl plug-in entry: `VERL_USE_EXTERNAL_MODULES=omni_rl.cpu.plugin` registers everything verl lacks on CPU.

`import verl` imports the modules named in that variable in every process (driver, TaskRunner, Ray
workers), so each of them registers: the "cpu" platform (picked with `VERL_PLATFORM=cpu`), the FSDP
training engines for device "cpu", and the `hf_cpu` rollout backend; and applies the named patches in
`omni_rl.cpu.patches` (and, lazily, the platform-independent ones in `omni_rl.rl.patches`).
"""

from __future__ import annotations

import os

from omni_rl.cpu.platform import register_platform

register_platform()  # first: the imports below may already ask verl for its platform
os.environ.setdefault("VERL_PLATFORM", "cpu")  # loading this plug-in is the opt-in; children inherit it


def _register_engines() -> None:
    """Key verl's FSDP engines (which are device-agnostic torch code) under device "cpu" too."""
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithValueHead

    from omni_rl.cpu.trace import traced_lm_head_engine

    # Runs once per process (this module body is the plug-in; Python caches the import).
    # The LM-head engine is verl's own, subclassed only to record its model inputs under OMNI_RL_CPU_TRACE.
    for model_type, cls in (
        ("language_model", traced_lm_head_engine()),
        ("value_model", FSDPEngineWithValueHead),
    ):
        EngineRegistry.register(model_type=model_type, backend=["fsdp", "fsdp2"], device="cpu")(cls)


_register_engines()
# the hf_cpu rollout (replica + adapter) and the platform-independent patches: one module for CPU and GPU
import omni_rl.cpu.rollout_plugin  # noqa: E402, F401
