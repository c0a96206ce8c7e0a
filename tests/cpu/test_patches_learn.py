"""omni_rl.cpu additions for the learn chain (issue 14), each against verl's real code in a child process:

- verl's SFT trainer initialises torchrun's process group with "cpu:gloo,cpu:gloo" on CPU (torch refuses it);
  the plug-in's wrapper makes it "cpu:gloo";
- a GenRM replica in verl's reward pool and the policy's rollout get different server actor names.

(The reward keys in step metrics and the surfaced rollout error are platform-independent: tests/rl/test_verl_patches.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from omni_rl.testing.servers import free_port
from omni_rl.testing.verl_env import plugin_free_env

SFT_INIT = textwrap.dedent(
    """
    import json, os
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=os.environ["PROBE_PORT"])
    if os.environ.get("NO_PLUGIN"):
        from omni_rl.cpu.platform import register_platform
        register_platform()
    import verl
    import torch
    from verl.utils.distributed import initialize_global_process_group  # what run_sft imports
    try:
        out = initialize_global_process_group(timeout_second=60)
    except Exception as e:
        print("INIT_ERROR " + str(e).split(chr(10))[0])
    else:
        print("INIT_OK" + json.dumps([list(out), str(torch.distributed.get_backend())]))
        torch.distributed.destroy_process_group()
    """
)


def _run(code: str, plugin: bool = True, **env_extra: str) -> str:
    env = plugin_free_env(PROBE_PORT=str(free_port()), VERL_PLATFORM="cpu", **env_extra)
    if plugin:
        env["VERL_USE_EXTERNAL_MODULES"] = "omni_rl.cpu.plugin"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    return res.stdout


@pytest.mark.slow
def test_sft_process_group_on_cpu() -> None:
    """Unpatched, verl's torchrun initialiser fails on CPU exactly as reported; with the plug-in it is gloo."""
    bare = _run(SFT_INIT, plugin=False, NO_PLUGIN="1")
    assert "INIT_ERROR" in bare and "Duplicate device type cpu" in bare, bare
    out = _run(SFT_INIT)
    line = next(x for x in out.splitlines() if x.startswith("INIT_OK"))
    (local_rank, rank, world), backend = json.loads(line[len("INIT_OK") :])
    assert (local_rank, rank, world) == (0, 0, 1) and "gloo" in backend, backend


NAMES = textwrap.dedent(
    """
    import json
    import verl
    from omegaconf import OmegaConf
    from omni_rl.cpu.rollout import HFCpuReplica, server_actor_name
    cfg = OmegaConf.create({"_target_": "verl.workers.config.RolloutConfig", "name": "hf_cpu",
                            "tensor_model_parallel_size": 1, "prompt_length": 16, "response_length": 8})
    reward = HFCpuReplica(0, cfg, None, 1, is_reward_model=True)
    policy = HFCpuReplica(0, cfg, None, 1)
    print("NAMES" + json.dumps([reward.server_name(), policy.server_name(), server_actor_name(0)]))
    """
)


@pytest.mark.slow
def test_reward_pool_and_policy_servers_have_distinct_names() -> None:
    """RM=pool on CPU: both replicas are rank 0; the names differ and the policy's is what its adapter looks up."""
    out = _run(NAMES)
    reward, policy, adapter_lookup = json.loads(
        next(x for x in out.splitlines() if x.startswith("NAMES"))[5:]
    )
    assert reward != policy and policy == adapter_lookup and "reward" in reward
