"""omni_rl.rl.patches against verl's real modules, each in a fresh interpreter loaded the way verl loads plug-ins.

- GPU job (`VERL_USE_EXTERNAL_MODULES=omni_rl.rl` only): `import verl` leaves the trainer modules unimported and
  the platform unresolved, and importing the trainer afterwards finds every target wrapped, once;
- CPU job (`omni_rl.rl,omni_rl.cpu.plugin`, the order recipes/lib.sh builds): the "cpu" platform still resolves
  (an eager import of the trainer from omni_rl.rl broke it with "Unknown platform 'cpu'");
- the behaviour: the reward's keys reach a training step's metrics; a reward-function error replaces verl's
  unrelated "no materializable trajectories"; a group that failed on the reward's failure budget stops the
  job even though verl would train on the remaining groups.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from omni_rl.rl.patches import AGENT_LOOP_TQ, METRIC_UTILS, REPLAY_BUFFER, TRAINER_V1
from omni_rl.testing.verl_env import plugin_free_env

TARGETS = (METRIC_UTILS, TRAINER_V1, AGENT_LOOP_TQ, REPLAY_BUFFER)

# the wrapped objects, as verl's own code reaches them (including by-name imports of compute_data_metrics)
CHECK_WRAPPED = textwrap.dedent(
    """
    import sys
    from verl.trainer.ppo import metric_utils, ray_trainer
    from verl.trainer.ppo.v1 import agent_loop_tq, replay_buffer, trainer_base
    from omni_rl.rl import patches
    patches.install()  # a second install (as the CPU plug-in does) must not wrap again
    objs = {
        "metric_utils": metric_utils.compute_data_metrics,
        "ray_trainer": ray_trainer.compute_data_metrics,
        "trainer_base": trainer_base.compute_data_metrics,
        "v1_compute_metrics": trainer_base.PPOTrainer._compute_metrics,
        "settle": agent_loop_tq._settle_session_tasks,
        "sample": replay_buffer.ReplayBuffer.sample,
    }
    after["wrapped"] = {k: getattr(o, patches.PATCHED_FLAG, False) for k, o in objs.items()}
    after["double"] = [k for k, o in objs.items() if getattr(o.__wrapped__, patches.PATCHED_FLAG, False)]
    from omni_rl.rl.import_hooks import pending
    after["pending"] = pending()
    from verl.plugin.platform import get_platform
    after["platform"] = type(get_platform()).__name__
    print("PROBE" + json.dumps({"before": before, "after": after}))
    """
)

GPU_JOB = (
    textwrap.dedent(
        """
        import json, sys
        import verl  # imports omni_rl.rl through VERL_USE_EXTERNAL_MODULES
        from verl.plugin.platform import platform_manager
        targets = %r
        before = {"loaded": [t for t in targets if t in sys.modules],
                  "platform_resolved": platform_manager._current_platform is not None,
                  "omni_rl_rl": "omni_rl.rl" in sys.modules}
        after = {}
        """
    )
    % (TARGETS,)
    + CHECK_WRAPPED
)


def _run(code: str, modules: str, platform: str | None = None, **env_extra: str) -> tuple[str, str]:
    """Run `code` in a fresh interpreter with only these verl plug-ins; (stdout, stderr)."""
    env = plugin_free_env(VERL_USE_EXTERNAL_MODULES=modules, RAY_USAGE_STATS_ENABLED="0", **env_extra)
    if platform:
        env["VERL_PLATFORM"] = platform
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    return res.stdout, res.stderr


def _probe(stdout: str) -> dict:
    return json.loads(next(x for x in stdout.splitlines() if x.startswith("PROBE"))[len("PROBE") :])


ALL_WRAPPED = {
    "metric_utils": True,
    "ray_trainer": True,
    "trainer_base": True,
    "v1_compute_metrics": True,
    "settle": True,
    "sample": True,
}


def test_gpu_job_plugin_list_wraps_verl_lazily() -> None:
    """omni_rl.rl alone imports no trainer module and resolves no platform; the trainer, once imported, is wrapped."""
    out, err = _run(GPU_JOB, "omni_rl.rl")
    probe = _probe(out)
    assert probe["before"] == {"loaded": [], "platform_resolved": False, "omni_rl_rl": True}
    after = probe["after"]
    assert after["wrapped"] == ALL_WRAPPED and after["double"] == [] and after["pending"] == {}
    assert after["platform"] != "PlatformCPU"  # verl picked its own platform: nothing of omni_rl.cpu loaded
    announced = [line for line in err.splitlines() if line.startswith("[omni-rl] patched ")]
    assert len(announced) == 4 and len(set(announced)) == 4, announced  # one line per target, once


CPU_JOB = (
    textwrap.dedent(
        """
    import json, sys
    import verl  # omni_rl.rl first, then omni_rl.cpu.plugin, as recipes/lib.sh builds the list
    from verl.plugin.platform import get_platform
    from verl.utils.device import get_device_name
    before = {"platform": type(get_platform()).__name__, "device": get_device_name()}
    after = {}
    """
    )
    + CHECK_WRAPPED
)


@pytest.fixture(scope="module")
def cpu_child() -> tuple[str, str]:
    """One fresh interpreter with the recipes' CPU plug-in list runs the CPU-order probe, then the step-metrics
    probe, then the error-surfacing probe, in that order (each prints its own tagged line): one verl import
    instead of three. The CPU-order probe runs first, so its "before" still sees a fresh `import verl`."""
    return _run(CPU_JOB + STEP_METRICS + SURFACE, "omni_rl.rl,omni_rl.cpu.plugin", platform="cpu")


def test_cpu_plugin_after_omni_rl_rl_still_resolves_the_cpu_platform(cpu_child: tuple[str, str]) -> None:
    """The recipes' CPU order: the platform is "cpu", and the patches are installed exactly once."""
    out, err = cpu_child
    probe = _probe(out)
    assert probe["before"] == {"platform": "PlatformCPU", "device": "cpu"}
    after = probe["after"]
    assert after["wrapped"] == ALL_WRAPPED and after["double"] == [] and after["pending"] == {}
    assert after["platform"] == "PlatformCPU"
    assert len([x for x in err.splitlines() if x.startswith("[omni-rl] patched ")]) == 4


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
    out["v1_patched"] = bool(getattr(trainer_base.PPOTrainer._compute_metrics, "__omni_rl_patched__", False))
    print("METRICS" + json.dumps(out))
    """
)


@pytest.mark.slow
def test_reward_keys_reach_training_step_metrics(cpu_child: tuple[str, str]) -> None:
    """The trainer's own compute_data_metrics (as ray_trainer calls it) carries the reward's numeric keys."""
    out, _ = cpu_child
    line = next(x for x in out.splitlines() if x.startswith("METRICS"))
    metrics = json.loads(line[len("METRICS") :])
    assert metrics == {
        "reward_extra/format/mean": 0.75,
        "reward_extra/judge_failed/mean": 0.25,
        "v1_patched": True,
    }


SURFACE = textwrap.dedent(
    """
    import asyncio, json
    import ray
    import verl
    from verl.trainer.ppo.v1 import agent_loop_tq, replay_buffer
    from omni_rl.rl.patches import RolloutFailedError, _with_error_surfacing

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
    patched = bool(getattr(replay_buffer.ReplayBuffer.sample, "__omni_rl_patched__", False))
    print("SURFACE" + json.dumps([len(errors), message, patched]))
    ray.shutdown()
    """
)


@pytest.mark.slow
def test_reward_error_is_what_the_user_reads(cpu_child: tuple[str, str]) -> None:
    """A reward-function error in verl's agent loop replaces verl's unrelated 'no materializable trajectories'."""
    out, _ = cpu_child
    n_errors, message, patched = json.loads(next(x for x in out.splitlines() if x.startswith("SURFACE"))[7:])
    assert n_errors == 1 and patched
    assert "no materializable trajectories" in message
    assert message.rstrip().endswith("reward_model.ground_truth must be 'A', 'B' or 'tie'"), message[-300:]
    assert "ValueError" in message


BUDGET = textwrap.dedent(
    """
    import asyncio, json
    import ray
    import verl
    from verl.trainer.ppo.v1 import agent_loop_tq
    from omni_rl.judge.budget import FailureBudget
    from omni_rl.rl.patches import RewardBudgetStop, _with_error_surfacing

    ray.init(num_cpus=1, include_dashboard=False, namespace="probe")
    budget = FailureBudget("policy reward judge", window=4, max_rates={"parse": 0.25}, min_outcomes=2)

    async def judge_once(kind):
        budget.record(kind, "lenient: answer missing")  # the real budget raises on the second unparsable call

    async def group(kind):  # verl's own settling of one group's sessions, as _run_prompt calls it
        return await agent_loop_tq._settle_session_tasks([asyncio.ensure_future(judge_once(kind))])

    def verl_sample(self):  # the other groups of the step materialised: verl returns a (smaller) batch
        return "batch"

    sample = _with_error_surfacing(verl_sample)
    out = {"first_group_errors": len(asyncio.run(group("parse")))}  # one unparsable call: within the budget
    out["before"] = sample(None)
    async def other_error():
        raise ValueError("rollout: server closed the connection")
    async def other_group():
        return await agent_loop_tq._settle_session_tasks([asyncio.ensure_future(other_error())])
    out["other_errors"] = len(asyncio.run(other_group()))
    out["after_other"] = sample(None)  # a non-budget error: verl's drop stands, counted and warned
    out["budget_errors"] = len(asyncio.run(group("parse")))
    try:
        sample(None)
        out["stopped"] = None
    except RewardBudgetStop as e:
        out["stopped"] = str(e)
    print("BUDGET" + json.dumps(out))
    ray.shutdown()
    """
)


@pytest.mark.slow
def test_a_group_failed_on_the_reward_budget_stops_the_job() -> None:
    """verl drops a failed group and trains on the rest; a reward past its failure budget must stop instead."""
    out, err = _run(BUDGET, "omni_rl.rl,omni_rl.cpu.plugin", platform="cpu")
    res = json.loads(next(x for x in out.splitlines() if x.startswith("BUDGET"))[len("BUDGET") :])
    assert res["first_group_errors"] == 0 and res["before"] == "batch"
    assert res["other_errors"] == 1 and res["after_other"] == "batch"
    assert "1 agent-loop error(s) so far: verl dropped those groups" in err
    assert res["budget_errors"] == 1
    stopped = res["stopped"]
    assert stopped and "failure budget exceeded" in stopped and "FailureBudgetExceeded" in stopped, res
    assert "2 of the last 2 judge calls were unparsable" in stopped, stopped[-600:]
