"""verl plug-in entry for the HF-generate rollout alone: `VERL_USE_EXTERNAL_MODULES=omni_rl.cpu.rollout_plugin`.

On a CUDA machine without vLLM (PROFILE=gpu_tiny,gpu_hf; `make gpu-smoke` with `--rollout hf`) verl's trainer
runs on the GPU as usual and only the rollout is ours: `rollout.name=hf_cpu` resolves to
`omni_rl.cpu.rollout` (its server actor holds no GPU, so it generates on CPU, with weights pushed from the
actor every step). Nothing here changes verl's platform; `omni_rl.cpu.plugin` (the CPU platform) imports
this module for its own rollout.
"""

from __future__ import annotations


def _load_replica() -> type:
    """Lazy, like verl's own loaders: omni_rl.cpu.rollout imports verl, which imports this plug-in."""
    from omni_rl.cpu.rollout import HFCpuReplica

    return HFCpuReplica


def register_rollout() -> None:
    """Make `rollout.name=hf_cpu` resolve on both sides: replica (public registry) and adapter."""
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    from omni_rl.cpu import ROLLOUT_NAME
    from omni_rl.cpu.patches import (
        add_rollout_adapter,
        patch_gloo_process_group,
        patch_torchrun_process_group,
    )
    from omni_rl.rl import patches

    RolloutReplicaRegistry.register(ROLLOUT_NAME, _load_replica)
    add_rollout_adapter(ROLLOUT_NAME)
    # both wrappers act only when verl's device is "cpu", so they are inert on a GPU
    patch_gloo_process_group()
    patch_torchrun_process_group()  # verl's SFT trainer under torchrun (recipes/sft_genrm.sh)
    # Also installed by omni_rl.rl (every platform); idempotent and lazy, here for a plug-in list without it.
    patches.install()  # reward keys in every training step; a reward-function error is what the user reads


register_rollout()
