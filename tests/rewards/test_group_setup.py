"""Start-up checks of the group win-rate manager: validation detection and reward-worker concurrency."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from omni_rl.rewards.group_setup import (
    RAY_ASYNC_ACTOR_CONCURRENCY,
    GroupConfig,
    check_startup,
    max_calls_per_worker,
)


def _parquet(path: Path, splits: list[str | None]) -> str:
    rows = [{"data_source": "qa", "extra_info": {"index": i, "split": s}} for i, s in enumerate(splits)]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def _cfg(val_files: str | None, n: int = 4, val_n: int = 1, **over) -> OmegaConf:
    cfg = {
        "actor_rollout_ref": {"rollout": {"n": n, "val_kwargs": {"n": val_n}}},
        "data": {"train_batch_size": 8, "val_batch_size": None, "val_files": val_files},
        "trainer": {"val_before_train": True, "test_freq": 5},
        "reward": {"num_workers": 8, "reward_model": {"enable": False, "enable_resource_pool": False}},
    }
    return OmegaConf.merge(OmegaConf.create(cfg), OmegaConf.create(over))


def test_unmarked_validation_rows_fail_fast_naming_the_file_and_the_fixes(tmp_path: Path) -> None:
    # verl 0.9.1 passes no validate flag to reward code: these rows would wait for 4 members that never come
    val = _parquet(tmp_path / "val.parquet", ["val", None, "train"])
    cfg = _cfg(val)
    with pytest.raises(
        ValueError, match=r"2 of 3 rows of .*val\.parquet have no validation extra_info\.split"
    ) as e:
        check_startup(cfg, GroupConfig.from_config({}, cfg))
    assert "val_kwargs.n=4" in str(e.value) and "trainer.val_before_train=false" in str(e.value)


@pytest.mark.parametrize("case", ["marked", "same_size", "no_validation"])
def test_validation_setups_that_cannot_hang_start(tmp_path: Path, case: str) -> None:
    if case == "marked":
        cfg = _cfg(_parquet(tmp_path / "v.parquet", ["val", "test", "validation"]))
    elif case == "same_size":  # val groups complete like training groups: no marker needed
        cfg = _cfg(_parquet(tmp_path / "v.parquet", [None]), val_n=4)
    else:
        cfg = _cfg(
            _parquet(tmp_path / "v.parquet", [None]), trainer={"val_before_train": False, "test_freq": -1}
        )
    check_startup(cfg, GroupConfig.from_config({}, cfg))


def test_remote_validation_files_cannot_be_checked_and_say_so() -> None:
    cfg = _cfg("hdfs://cluster/val.parquet")
    with pytest.raises(ValueError, match="not a local file"):
        check_startup(cfg, GroupConfig.from_config({}, cfg))


def test_streaming_batches_that_could_fill_reward_worker_slots_fail_fast(tmp_path: Path) -> None:
    cap = max_calls_per_worker()
    assert cap + 4 * cap**0.5 == pytest.approx(RAY_ASYNC_ACTOR_CONCURRENCY)
    cfg = _cfg(None, n=16, data={"train_batch_size": 512})  # 512·16/8 = 1024 waiting calls per worker
    with pytest.raises(
        ValueError, match=r"512×16 = 8192 trajectories over reward.num_workers=8.*num_workers>=10"
    ):
        check_startup(cfg, GroupConfig.from_config({}, cfg))
    check_startup(cfg_ok := _cfg(None, n=16, data={"train_batch_size": 512}, reward={"num_workers": 10}),
                  GroupConfig.from_config({}, cfg_ok))  # fmt: skip
    colocated = _cfg(None, n=16, data={"train_batch_size": 512}, reward={"reward_model": {"enable": True}})
    check_startup(colocated, GroupConfig.from_config({}, colocated))  # one call per worker chunk: no limit
    # validation runs the whole val set as one batch when val_batch_size is null
    val = _parquet(tmp_path / "big_val.parquet", ["val"] * 2000)
    cfg = _cfg(val, n=4, val_n=4)
    with pytest.raises(ValueError, match=r"a validation batch streams 2000×4"):
        check_startup(cfg, GroupConfig.from_config({}, cfg))


def test_group_config_rejects_unknown_keys_and_schemes() -> None:
    cfg = _cfg(None)
    with pytest.raises(ValueError, match=r"unknown keys \['stall'\]"):
        GroupConfig.from_config({"stall": 3}, cfg)
    with pytest.raises(ValueError, match="scheme must be one of"):
        GroupConfig.from_config({"scheme": "knockout"}, cfg)
    g = GroupConfig.from_config({"scheme": "adaptive"}, cfg)
    assert (g.size, g.val_size, g.scheme) == (4, 1, "adaptive")
