"""Every place omni-rl touches a verl internal, named and checked (verl 0.9.1).

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

4. `patch_reward_step_metrics`: verl's trainer logs the reward function's extra keys (format, accuracy,
   judge_failed, parse_failed, soft_verdict, ...) only in *validation*; a training step shows the score
   alone, so a GenRM that stops writing valid verdicts, or a judge that fails, is invisible while training.
   `verl.trainer.ppo.metric_utils.compute_data_metrics` is wrapped to add `reward_extra/<key>/mean` for
   every numeric per-sample key the reward returned (they sit in `batch.non_tensor_batch`).

5. `patch_rollout_error_surfacing`: when the reward function (or the rollout) raises inside verl's agent
   loop, verl logs the error in the AgentLoopWorker, marks the prompt failed, and the trainer then stops on
   its own "Sync replay buffer selected terminal groups with no materializable trajectories" -- the last
   thing a user reads is unrelated to the cause. `verl.trainer.ppo.v1.agent_loop_tq._settle_session_tasks`
   is wrapped to record each error (with its traceback) in a named Ray actor of the job, and
   `ReplayBuffer.sample` re-raises verl's RuntimeError as `RolloutFailedError` carrying the first recorded
   error.

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


#: non_tensor_batch keys that are verl's or the dataset's, not the reward function's
_NOT_REWARD_KEYS = frozenset({"index", "uid", "__num_turns__", "request_id", "global_steps"})


def reward_extra_metrics(batch: Any) -> dict[str, float]:
    """`reward_extra/<key>/mean` for each numeric one-value-per-sample array in the batch's non-tensors."""
    import numpy as np

    out: dict[str, float] = {}
    n = len(batch)
    for key, values in batch.non_tensor_batch.items():
        if key in _NOT_REWARD_KEYS:
            continue
        arr = np.asarray(values)
        if arr.ndim == 1 and len(arr) == n and n and arr.dtype.kind in "fiub":
            out[f"reward_extra/{key}/mean"] = float(arr.astype(np.float64).mean())
    return out


def _with_reward_extra(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap verl's step-metric function: its metrics, plus the reward's own keys averaged over the batch."""

    @functools.wraps(original)
    def compute_data_metrics(batch: Any, use_critic: bool = True) -> dict[str, Any]:
        metrics = original(batch=batch, use_critic=use_critic)
        metrics.update(reward_extra_metrics(batch))
        return metrics

    setattr(compute_data_metrics, _PATCHED_FLAG, True)
    return compute_data_metrics


def v1_reward_extra_metrics(batch: Any) -> dict[str, float]:
    """verl's v1 trainer keeps each sample's reward_extra_info in TransferQueue's `extra_fields`: average it."""
    import numpy as np
    import transfer_queue as tq

    mask = [not tag.get("is_padding", False) for tag in batch.tags]
    data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
    rows = [
        f.get("reward_extra_info", {}) if isinstance(f, dict) else {}
        for f in data.pop("extra_fields").tolist()
    ]
    values: dict[str, list[float]] = {}
    for keep, info in zip(mask, rows, strict=False):
        for key, value in info.items() if keep else ():
            if isinstance(value, int | float | np.number) and not isinstance(value, bool):
                values.setdefault(key, []).append(float(value))
    return {
        f"reward_extra/{k}/mean": float(np.mean(v)) for k, v in values.items() if k not in _NOT_REWARD_KEYS
    }


def _with_v1_reward_extra(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the v1 trainer's `_compute_metrics(self, batch, metrics, ...)`: add the reward's keys to `metrics`."""

    @functools.wraps(original)
    def _compute_metrics(self: Any, batch: Any, metrics: dict, *args: Any, **kwargs: Any) -> Any:
        out = original(self, batch, metrics, *args, **kwargs)
        try:
            metrics.update(v1_reward_extra_metrics(batch))
        except Exception as exc:  # metrics are diagnostics: never stop training over them
            import logging

            logging.getLogger(__name__).warning("reward_extra metrics unavailable: %s", exc)
        return out

    setattr(_compute_metrics, _PATCHED_FLAG, True)
    return _compute_metrics


def patch_reward_step_metrics() -> None:
    """Install the wrapper in metric_utils and in ray_trainer if it already imported the function by name;
    for verl's v1 trainer (TaskRunnerV1, the default in 0.9.1) wrap `PPOTrainer._compute_metrics`."""
    import inspect
    import sys

    from verl.trainer.ppo import metric_utils

    original = getattr(metric_utils, "compute_data_metrics", None)
    if original is None or list(inspect.signature(original).parameters) != ["batch", "use_critic"]:
        raise RuntimeError(
            "verl.trainer.ppo.metric_utils.compute_data_metrics changed (verl upgrade?): omni_rl cannot add "
            "the reward's keys to the step metrics; see omni_rl/cpu/patches.py"
        )
    from verl.trainer.ppo.v1 import trainer_base

    v1 = getattr(trainer_base.PPOTrainer, "_compute_metrics", None)
    if v1 is None or list(inspect.signature(v1).parameters)[:3] != ["self", "batch", "metrics"]:
        raise RuntimeError(
            "verl.trainer.ppo.v1.trainer_base.PPOTrainer._compute_metrics changed (verl upgrade?): omni_rl "
            "cannot add the reward's keys to the step metrics; see omni_rl/cpu/patches.py"
        )
    if not getattr(v1, _PATCHED_FLAG, False):
        trainer_base.PPOTrainer._compute_metrics = _with_v1_reward_extra(v1)
    if getattr(original, _PATCHED_FLAG, False):
        return
    wrapped = _with_reward_extra(original)
    metric_utils.compute_data_metrics = wrapped
    trainer = sys.modules.get("verl.trainer.ppo.ray_trainer")
    if trainer is not None and getattr(trainer, "compute_data_metrics", None) is original:
        trainer.compute_data_metrics = wrapped


ERRORS_ACTOR = "omni_rl_rollout_errors"
_HANDLES: dict[str, Any] = {}
_NO_TRAJECTORIES = "no materializable trajectories"


class RolloutFailedError(RuntimeError):
    """Every rollout of a step failed; the message carries the first error raised inside verl's agent loop."""


class _ErrorLog:
    """Ray actor: the first errors raised in the job's agent loops (rollout or reward function)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.count = 0

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.errors) < 8:
            self.errors.append(text)

    def get(self) -> tuple[int, list[str]]:
        return self.count, list(self.errors)


def _error_log(create: bool) -> Any:
    """The job's error-log actor (created on first error), or None when there is none."""
    import ray

    if create:
        if _HANDLES.get("log") is None:  # keep a handle: a named actor without one is garbage-collected
            _HANDLES["log"] = (
                ray.remote(_ErrorLog).options(name=ERRORS_ACTOR, get_if_exists=True, num_cpus=0).remote()
            )
        return _HANDLES["log"]
    try:
        return ray.get_actor(ERRORS_ACTOR)
    except ValueError:
        return None


def _with_error_record(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap verl's session settling: errors are returned as before, and recorded for the trainer."""

    @functools.wraps(original)
    async def _settle_session_tasks(tasks: list) -> list[BaseException]:
        import traceback

        errors = await original(tasks)
        for err in errors[:2]:
            text = "".join(traceback.format_exception(type(err), err, err.__traceback__))[-4000:]
            try:
                await _error_log(create=True).add.remote(text)
            except Exception as exc:  # recording must never hide verl's own handling of the failure
                import logging

                logging.getLogger(__name__).warning("could not record rollout error: %s", exc)
        return errors

    setattr(_settle_session_tasks, _PATCHED_FLAG, True)
    return _settle_session_tasks


def _with_error_surfacing(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ReplayBuffer.sample: verl's "no materializable trajectories" becomes the recorded real error."""

    @functools.wraps(original)
    def sample(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except RuntimeError as exc:
            if _NO_TRAJECTORIES not in str(exc):
                raise
            import ray

            log = _error_log(create=False)
            count, errors = ray.get(log.get.remote()) if log is not None else (0, [])
            if not errors:
                raise
            raise RolloutFailedError(
                f"every rollout of this step failed inside verl's agent loop ({count} error(s) recorded); "
                f"verl reported: {exc}\nThe first error (rollout or reward function):\n{errors[0]}"
            ) from exc

    setattr(sample, _PATCHED_FLAG, True)
    return sample


def patch_rollout_error_surfacing() -> None:
    """Install both wrappers (verl 0.9.1's v1 trainer: agent_loop_tq and replay_buffer)."""
    import inspect

    from verl.trainer.ppo.v1 import agent_loop_tq, replay_buffer

    settle = getattr(agent_loop_tq, "_settle_session_tasks", None)
    sample = getattr(getattr(replay_buffer, "ReplayBuffer", None), "sample", None)
    if settle is None or sample is None or list(inspect.signature(settle).parameters) != ["tasks"]:
        raise RuntimeError(
            "verl.trainer.ppo.v1 agent_loop_tq._settle_session_tasks / replay_buffer.ReplayBuffer.sample changed "
            "(verl upgrade?): omni_rl cannot surface rollout errors; see omni_rl/cpu/patches.py"
        )
    if not getattr(settle, _PATCHED_FLAG, False):
        agent_loop_tq._settle_session_tasks = _with_error_record(settle)
    if not getattr(sample, _PATCHED_FLAG, False):
        replay_buffer.ReplayBuffer.sample = _with_error_surfacing(sample)
