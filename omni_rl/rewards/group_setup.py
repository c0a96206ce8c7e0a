"""Group win-rate settings and the start-up checks that stop a run before the group barrier can hang.

Two facts of verl 0.9.1 shape these checks:
- **No validation flag reaches reward code.** `_validate` sets `meta_info["validate"]` on the generation
  input only; the colocated path scores the rebuilt generation output and the streaming path
  (`AgentLoopWorker._compute_score`) sends a fresh DataProto with no meta_info. The only per-sample
  signal on both paths is the row itself, so a validation row is one whose `extra_info.split` is a
  validation split. When validation groups have another size than training groups (`val_kwargs.n` ≠
  `rollout.n`) every validation row must carry that marker; otherwise we refuse to start.
- **Waiting members hold reward-worker slots.** In the streaming path every finished trajectory is one
  `compute_score.remote` call on a random `RewardLoopWorker`, an async Ray actor with Ray's default
  `max_concurrency` of 1000; a member waiting at the barrier holds its slot. When one worker's share of a
  batch nears that limit, waiting members can fill every slot while their leaders queue behind them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from typing import Any

from omni_rl.judge.tournament import SCHEMES

VAL_SPLITS = frozenset({"test", "val", "valid", "validation"})
#: Ray's default max_concurrency for an async actor; verl creates RewardLoopWorker without overriding it.
RAY_ASYNC_ACTOR_CONCURRENCY = 1000
_SPREAD_SIGMAS = 4.0  # headroom for verl's random.choice spread of trajectories over workers


@dataclass
class GroupConfig:
    """`reward_kwargs.group`: how a prompt group is judged and how long the barrier may hold it."""

    scheme: str = "round_robin"
    size: int = 0  # 0 = actor_rollout_ref.rollout.n
    val_size: int = 0  # 0 = actor_rollout_ref.rollout.val_kwargs.n
    rounds: int = 2  # swiss rounds
    timeout_s: float = 1800.0  # the longest a member waits in all
    stall_s: float = 600.0  # the longest a member waits with no new member joining its group
    max_bytes: int = 256 * 2**20  # barrier memory bound (responses + results)
    closed_ttl_s: float = 600.0  # how long a finished group's record serves padding copies / late members

    @classmethod
    def from_config(cls, group: dict[str, Any] | None, config: Any) -> GroupConfig:
        """Validate `reward_kwargs.group` (naming unknown keys) and fill sizes from the rollout config."""
        group = dict(group or {})
        known = {f.name for f in fields(cls)}
        bad = sorted(set(group) - known)
        if bad:
            raise ValueError(f"reward_kwargs.group: unknown keys {bad}; valid: {sorted(known)}")
        out = cls(**group)
        if out.scheme not in SCHEMES:
            raise ValueError(f"reward_kwargs.group.scheme must be one of {SCHEMES}, got {out.scheme!r}")
        rollout = config.actor_rollout_ref.rollout
        out.size = int(out.size or rollout.n)
        out.val_size = int(out.val_size or (rollout.get("val_kwargs") or {}).get("n", 1) or 1)
        return out


def _get(cfg: Any, dotted: str, default: Any = None) -> Any:
    """cfg.a.b.c or default when any level is missing (plain dicts and DictConfig alike)."""
    node = cfg
    for part in dotted.split("."):
        if node is None or not hasattr(node, "get"):
            return default
        node = node.get(part)
    return default if node is None else node


def _files(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


def validation_enabled(config: Any) -> bool:
    """True when the trainer will run `_validate` (before training or every test_freq steps)."""
    return (
        bool(_get(config, "trainer.val_before_train", True)) or int(_get(config, "trainer.test_freq", -1)) > 0
    )


def unmarked_val_rows(path: str) -> tuple[int, int]:
    """(rows without a validation extra_info.split, total rows) of one parquet file."""
    import pyarrow.parquet as pq

    table = (
        pq.read_table(path, columns=["extra_info"]) if "extra_info" in pq.read_schema(path).names else None
    )
    if table is None:
        return pq.ParquetFile(path).metadata.num_rows, pq.ParquetFile(path).metadata.num_rows
    infos = table.column("extra_info").to_pylist()
    return sum(str((e or {}).get("split", "")) not in VAL_SPLITS for e in infos), len(infos)


def check_validation(config: Any, group: GroupConfig) -> None:
    """Refuse to start when validation groups could wait for members that never come."""
    if group.val_size == group.size or not validation_enabled(config):
        return  # same group size in validation and training: no marker needed
    fix = (
        f"validation groups have {group.val_size} members (val_kwargs.n) but training groups {group.size}, "
        "and verl 0.9.1 passes no validation flag to reward code. Fix one of: set "
        f"actor_rollout_ref.rollout.val_kwargs.n={group.size}; or write extra_info.split='val' on every "
        "validation row; or turn validation off "
        "(trainer.val_before_train=false trainer.test_freq=-1)"
    )
    for path in _files(_get(config, "data.val_files")):
        if not os.path.isfile(path):
            raise ValueError(
                f"group win-rate: cannot check the validation rows of {path} (not a local file): {fix}"
            )
        bad, total = unmarked_val_rows(path)
        if bad:
            raise ValueError(
                f"group win-rate: {bad} of {total} rows of {path} have no validation extra_info.split: {fix}"
            )


def max_calls_per_worker(limit: int = RAY_ASYNC_ACTOR_CONCURRENCY) -> float:
    """The largest mean share x with x + 4·sqrt(x) ≤ limit (random routing's peak stays under the limit)."""
    root = (-_SPREAD_SIGMAS + math.sqrt(_SPREAD_SIGMAS**2 + 4 * limit)) / 2
    return root * root


def check_concurrency(config: Any, group: GroupConfig, val_rows: int | None = None) -> None:
    """Refuse to start when waiting members could fill a reward worker's concurrency slots (streaming path)."""
    if bool(_get(config, "reward.reward_model.enable", False)) and not bool(
        _get(config, "reward.reward_model.enable_resource_pool", False)
    ):
        return  # colocated: compute_rm_score sends one call per worker chunk, members are tasks inside it
    workers = int(_get(config, "reward.num_workers", 8))
    cap = max_calls_per_worker()
    batches = [("train", _get(config, "data.train_batch_size"), group.size)]
    if validation_enabled(config):
        batches.append(("validation", _get(config, "data.val_batch_size") or val_rows, group.val_size))
    for name, batch, n in batches:
        if batch is None or n < 2:
            continue
        share = int(batch) * n / workers
        if share > cap:
            need = math.ceil(int(batch) * n / cap)
            raise ValueError(
                f"group win-rate: a {name} batch streams {batch}×{n} = {int(batch) * n} trajectories over "
                f"reward.num_workers={workers} ({share:.0f} per worker); members waiting at the group barrier "
                f"each hold one of Ray's {RAY_ASYNC_ACTOR_CONCURRENCY} concurrent calls per RewardLoopWorker, "
                f"so the barrier can deadlock. Set reward.num_workers>={need} (or a smaller "
                f"{'data.train_batch_size' if name == 'train' else 'data.val_batch_size'})"
            )


def val_row_count(config: Any) -> int | None:
    """Rows in the local validation files (verl validates them in one batch when val_batch_size is null)."""
    import pyarrow.parquet as pq

    paths = _files(_get(config, "data.val_files"))
    if not paths or not all(os.path.isfile(p) for p in paths):
        return None
    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def check_startup(config: Any, group: GroupConfig) -> None:
    """Every start-up check for the group manager (run in each reward worker's constructor)."""
    check_validation(config, group)
    rows = val_row_count(config) if _get(config, "data.val_batch_size") is None else None
    check_concurrency(config, group, rows)
