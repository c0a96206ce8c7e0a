"""omni_rl.cpu additions for the learn chain (issue 14), each against verl's real code in a child process:

- verl's SFT trainer initialises torchrun's process group with "cpu:gloo,cpu:gloo" on CPU (torch refuses it);
  the plug-in's wrapper makes it "cpu:gloo";
- the reward function's own keys reach every *training* step's metrics (`reward_extra/<key>/mean`);
- a GenRM replica in verl's reward pool and the policy's rollout get different server actor names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from omni_rl.testing.servers import free_port

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

STEP_METRICS = textwrap.dedent(
    """
    import json
    import numpy as np
    import torch
    import verl
    from verl import DataProto
    from verl.trainer.ppo import metric_utils, ray_trainer
    n = 4
    batch = DataProto.from_dict(
        tensors={"token_level_scores": torch.ones(n, 3), "token_level_rewards": torch.ones(n, 3),
                 "prompts": torch.ones(n, 3, dtype=torch.long),
                 "advantages": torch.zeros(n, 3), "returns": torch.zeros(n, 3),
                 "responses": torch.ones(n, 3, dtype=torch.long), "attention_mask": torch.ones(n, 6, dtype=torch.long),
                 "response_mask": torch.ones(n, 3, dtype=torch.long)},
        non_tensors={"format": np.array([1.0, 0.0, 1.0, 1.0]), "judge_failed": np.array([0.0, 0.0, 1.0, 0.0]),
                     "verdict": np.array(["A", "none", "B", "A"], dtype=object), "index": np.arange(n),
                     "uid": np.array(list("abcd"), dtype=object)},
    )
    m = ray_trainer.compute_data_metrics(batch=batch, use_critic=False)
    out = {k: v for k, v in m.items() if k.startswith("reward_extra/")}
    from verl.trainer.ppo.v1 import trainer_base  # the v1 trainer (TaskRunnerV1) reads them from TransferQueue
    out["v1_patched"] = bool(getattr(trainer_base.PPOTrainer._compute_metrics, "__omni_rl_cpu_patched__", False))
    print("METRICS" + json.dumps(out))
    """
)


def _run(code: str, plugin: bool = True, **env_extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_")}
    env.update(PROBE_PORT=str(free_port()), VERL_PLATFORM="cpu", **env_extra)
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


@pytest.mark.slow
def test_reward_keys_reach_training_step_metrics() -> None:
    """The trainer's own compute_data_metrics (as ray_trainer calls it) carries the reward's numeric keys."""
    out = _run(STEP_METRICS)
    line = next(x for x in out.splitlines() if x.startswith("METRICS"))
    metrics = json.loads(line[len("METRICS") :])
    assert metrics == {
        "reward_extra/format/mean": 0.75,
        "reward_extra/judge_failed/mean": 0.25,
        "v1_patched": True,
    }


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


SURFACE = textwrap.dedent(
    """
    import asyncio, json
    import ray
    import verl
    from verl.trainer.ppo.v1 import agent_loop_tq, replay_buffer
    from omni_rl.cpu.patches import RolloutFailedError, _with_error_surfacing

    ray.init(num_cpus=1, include_dashboard=False, namespace="probe")

    async def reward_fails():
        raise ValueError("genrm reward: row 7: reward_model.ground_truth must be 'A', 'B' or 'tie'")

    async def settle():
        return await agent_loop_tq._settle_session_tasks([asyncio.ensure_future(reward_fails())])

    errors = asyncio.run(settle())  # verl's own call, as _run_prompt makes it
    def verl_sample(self):
        raise RuntimeError("Sync replay buffer selected terminal groups with no materializable trajectories.")
    try:
        _with_error_surfacing(verl_sample)(None)
    except RolloutFailedError as e:
        message = str(e)
    patched = bool(getattr(replay_buffer.ReplayBuffer.sample, "__omni_rl_cpu_patched__", False))
    print("SURFACE" + json.dumps([len(errors), message, patched]))
    ray.shutdown()
    """
)


@pytest.mark.slow
def test_reward_error_is_what_the_user_reads() -> None:
    """A reward-function error in verl's agent loop replaces verl's unrelated 'no materializable trajectories'."""
    out = _run(SURFACE, RAY_USAGE_STATS_ENABLED="0")
    n_errors, message, patched = json.loads(next(x for x in out.splitlines() if x.startswith("SURFACE"))[7:])
    assert n_errors == 1 and patched
    assert "no materializable trajectories" in message
    assert message.rstrip().endswith("reward_model.ground_truth must be 'A', 'B' or 'tie'"), message[-300:]
    assert "ValueError" in message
