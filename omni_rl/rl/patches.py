"""verl patches every platform needs (verl 0.9.1), installed lazily when verl imports each target.

`install()` runs when `omni_rl.rl` is imported -- i.e. inside `import verl` in every verl process
(VERL_USE_EXTERNAL_MODULES), before plug-ins listed after it (the CPU platform) have registered. So it
imports nothing of verl's trainer: each wrapper is applied by `omni_rl.rl.import_hooks.when_imported`
right after its module's first import (or at once if already imported); every wrapper carries
`PATCHED_FLAG`, so nothing is wrapped twice.

1. Reward keys in the training-step metrics: verl logs the reward function's extra keys (format, the
   judge's requests / failures / parse failures / mean P(better), ...) only in *validation*; a training step
   shows the score alone, so a GenRM that stops writing valid verdicts, or a failing judge, is invisible while
   training. Wrapped: `verl.trainer.ppo.v1.trainer_base.PPOTrainer._compute_metrics` (the v1 trainer,
   TaskRunnerV1, verl 0.9.1's default: the keys live in TransferQueue's `extra_fields`) and
   `verl.trainer.ppo.metric_utils.compute_data_metrics` (the legacy trainer: `batch.non_tensor_batch`),
   each adding `reward_extra/<key>/mean`.
2. Rollout errors surfaced: when the reward function (or the rollout) raises inside verl's agent loop, verl
   logs it in the AgentLoopWorker, marks the prompt failed, and the trainer stops on its own "Sync replay
   buffer selected terminal groups with no materializable trajectories" -- unrelated to the cause.
   `verl.trainer.ppo.v1.agent_loop_tq._settle_session_tasks` is wrapped to record each error (with its
   traceback) in a named Ray actor of the job, and `verl.trainer.ppo.v1.replay_buffer.ReplayBuffer.sample`
   re-raises verl's RuntimeError as `RolloutFailedError` carrying the first recorded error. When only some
   groups fail, verl drops them and trains on the rest: a reward that raised `FailureBudgetExceeded` (its
   "fail loudly past the limit") would only shrink the batch, so `sample` raises `RewardBudgetStop` then,
   and warns with the running count for any other dropped group.

`tests/rl/test_verl_patches.py` fails loudly if a verl upgrade renames or reshapes any target.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from omni_rl.rl.import_hooks import when_imported

PATCHED_FLAG = "__omni_rl_patched__"
METRIC_UTILS = "verl.trainer.ppo.metric_utils"
TRAINER_V1 = "verl.trainer.ppo.v1.trainer_base"
AGENT_LOOP_TQ = "verl.trainer.ppo.v1.agent_loop_tq"
REPLAY_BUFFER = "verl.trainer.ppo.v1.replay_buffer"

logger = logging.getLogger(__name__)
_INSTALLED: set[str] = set()


def _announce(target: str) -> None:
    """One stderr line per process and target, whatever verl's logging level."""
    print(f"[omni-rl] patched {target}", file=sys.stderr, flush=True)


def _reshaped(target: str, what: str) -> RuntimeError:
    return RuntimeError(f"{target} changed (verl upgrade?): omni_rl cannot {what}; see omni_rl/rl/patches.py")


# ---- 1. reward keys in the training-step metrics ------------------------------------------------------

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

    setattr(compute_data_metrics, PATCHED_FLAG, True)
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
            logger.warning("reward_extra metrics unavailable: %s", exc)
        return out

    setattr(_compute_metrics, PATCHED_FLAG, True)
    return _compute_metrics


def _patch_metric_utils(metric_utils: ModuleType) -> None:
    """Wrap compute_data_metrics; rebind it in verl modules that already imported it by name."""
    original = getattr(metric_utils, "compute_data_metrics", None)
    if original is None or list(inspect.signature(original).parameters) != ["batch", "use_critic"]:
        raise _reshaped(f"{METRIC_UTILS}.compute_data_metrics", "add the reward's keys to the step metrics")
    if getattr(original, PATCHED_FLAG, False):
        return
    wrapped = _with_reward_extra(original)
    metric_utils.compute_data_metrics = wrapped
    for name, module in list(sys.modules.items()):  # importers from now on bind the wrapper themselves
        if name.startswith("verl.") and getattr(module, "compute_data_metrics", None) is original:
            module.compute_data_metrics = wrapped
    _announce(f"{METRIC_UTILS}.compute_data_metrics (reward keys in step metrics)")


def _wrap_attr(owner: Any, target: str, attr: str, wrap: Any, purpose: str, params: list[str] | None) -> None:
    """Replace owner.attr by wrap(original) once; a missing attr or other leading parameters stop loudly."""
    original = getattr(owner, attr, None)
    if original is None or (params and list(inspect.signature(original).parameters)[: len(params)] != params):
        raise _reshaped(target, purpose)
    if not getattr(original, PATCHED_FLAG, False):
        setattr(owner, attr, wrap(original))
        _announce(target)


def _patch_trainer_v1(trainer_base: ModuleType) -> None:
    """Wrap PPOTrainer._compute_metrics of verl's v1 trainer."""
    _wrap_attr(getattr(trainer_base, "PPOTrainer", None), f"{TRAINER_V1}.PPOTrainer._compute_metrics",
               "_compute_metrics", _with_v1_reward_extra, "add the reward's keys to the step metrics",
               ["self", "batch", "metrics"])  # fmt: skip


def patch_reward_step_metrics() -> None:
    """Reward keys in every training step: wrap metric_utils and the v1 trainer once verl imports them."""
    if "metrics" not in _INSTALLED:
        _INSTALLED.add("metrics")
        when_imported(METRIC_UTILS, _patch_metric_utils)
        when_imported(TRAINER_V1, _patch_trainer_v1)


# ---- 2. rollout errors surfaced ------------------------------------------------------------------------

ERRORS_ACTOR = "omni_rl_rollout_errors"
_HANDLES: dict[str, Any] = {}
_WARNED = {"count": 0}  # agent-loop errors already warned about in this (trainer) process
_NO_TRAJECTORIES = "no materializable trajectories"


#: errors that must stop the job: verl drops a failed group and trains on the rest, which would turn the
#: reward's "fail loudly past the limit" (a FailureBudgetExceeded, or a JudgeError under on_failure=raise)
#: into a quietly smaller batch (seen in the learn chain: 11 of 64 groups dropped, exit 0)
FATAL_MARKERS = ("FailureBudgetExceeded", "JudgeError")


class RolloutFailedError(RuntimeError):
    """Every rollout of a step failed; the message carries the first error raised inside verl's agent loop."""


class RewardBudgetStop(RolloutFailedError):
    """The reward's judge failed past its limit inside verl's agent loop: the job stops instead of dropping groups."""


class _ErrorLog:
    """Ray actor: the first errors raised in the job's agent loops (rollout or reward function)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.fatal: list[str] = []
        self.count = 0

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.errors) < 8:
            self.errors.append(text)
        if any(m in text for m in FATAL_MARKERS) and len(self.fatal) < 2:
            self.fatal.append(text)

    def get(self) -> tuple[int, list[str], list[str]]:
        return self.count, list(self.errors), list(self.fatal)


def _error_log(create: bool) -> Any:
    """The job's error-log actor (created on first error), or None when there is none."""
    import ray

    if _HANDLES.get("log") is not None:  # kept: a named actor without a handle is garbage-collected
        return _HANDLES["log"]
    if create:
        _HANDLES["log"] = (
            ray.remote(_ErrorLog).options(name=ERRORS_ACTOR, get_if_exists=True, num_cpus=0).remote()
        )
    else:  # the trainer asks every step; the actor appears with the first error in some agent-loop worker
        try:
            _HANDLES["log"] = ray.get_actor(ERRORS_ACTOR)
        except ValueError:
            return None
    return _HANDLES["log"]


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
                logger.warning("could not record rollout error: %s", exc)
        return errors

    setattr(_settle_session_tasks, PATCHED_FLAG, True)
    return _settle_session_tasks


def _with_error_surfacing(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ReplayBuffer.sample: verl's "no materializable trajectories" becomes the recorded real error."""

    @functools.wraps(original)
    def sample(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            batch = original(self, *args, **kwargs)
        except RuntimeError as exc:
            if _NO_TRAJECTORIES not in str(exc):
                raise
            import ray

            log = _error_log(create=False)
            count, errors, _ = ray.get(log.get.remote()) if log is not None else (0, [], [])
            if not errors:
                raise
            raise RolloutFailedError(
                f"every rollout of this step failed inside verl's agent loop ({count} error(s) recorded); "
                f"verl reported: {exc}\nThe first error (rollout or reward function):\n{errors[0]}"
            ) from exc
        _stop_on_fatal_errors()
        return batch

    setattr(sample, PATCHED_FLAG, True)
    return sample


def _stop_on_fatal_errors() -> None:
    """Raise RewardBudgetStop when a group failed on the reward's budget; warn once per new count otherwise."""
    import ray

    log = _error_log(create=False)
    if log is None:
        return
    count, _, fatal = ray.get(log.get.remote())
    if fatal:
        raise RewardBudgetStop(
            f"the reward's judge failed past its limit inside verl's agent loop ({count} agent-loop error(s) so "
            "far: failure budget exceeded, or a judge error under on_failure=raise); verl would drop the failed "
            "groups and train on the rest, so the job stops here. Fix the judge, or knowingly raise the budget "
            f"(reward_kwargs.max_*_rate) or set on_failure=neutral.\nThe error:\n{fatal[0]}"
        )
    if count > _WARNED["count"]:
        _WARNED["count"] = count
        logger.warning("%d agent-loop error(s) so far: verl dropped those groups from their steps", count)


def _patch_agent_loop_tq(agent_loop_tq: ModuleType) -> None:
    """Wrap _settle_session_tasks (a module global that verl's agent loop looks up at call time)."""
    _wrap_attr(agent_loop_tq, f"{AGENT_LOOP_TQ}._settle_session_tasks", "_settle_session_tasks",
               _with_error_record, "surface rollout errors", ["tasks"])  # fmt: skip


def _patch_replay_buffer(replay_buffer: ModuleType) -> None:
    """Wrap ReplayBuffer.sample, the sync buffer that raises "no materializable trajectories"."""
    _wrap_attr(getattr(replay_buffer, "ReplayBuffer", None), f"{REPLAY_BUFFER}.ReplayBuffer.sample", "sample",
               _with_error_surfacing, "surface rollout errors", None)  # fmt: skip


def patch_rollout_error_surfacing() -> None:
    """Record agent-loop errors and raise the first instead of verl's own, once verl imports the v1 modules."""
    if "errors" not in _INSTALLED:
        _INSTALLED.add("errors")
        when_imported(AGENT_LOOP_TQ, _patch_agent_loop_tq)
        when_imported(REPLAY_BUFFER, _patch_replay_buffer)


def install() -> None:
    """Both patches, lazily; safe to call from every plug-in and any number of times."""
    patch_reward_step_metrics()
    patch_rollout_error_surfacing()
