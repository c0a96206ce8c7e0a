"""The verdict-token probe on a real merged-style model folder: the tiny random-init Qwen2 and the chain's SFT parquet."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from omni_rl.learn.probe import verdict_loss
from omni_rl.learn.synthetic import TaskSpec, write_task


def test_random_init_judge_is_far_above_the_content_blind_floor(
    tiny_text_model: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    stats = write_task(
        tmp_path,
        AutoTokenizer.from_pretrained(tiny_text_model),
        TaskSpec(n_train=40, n_heldout=4, n_policy=2),
    )
    res = verdict_loss(tiny_text_model, tmp_path / "sft" / "train.parquet", limit=16)
    assert res["rows"] == 16
    blind = stats["sft"]["loss_floor"]["verdict_entropy_content_blind"]
    # an untrained model spreads its mass over the whole vocabulary: ~ln(vocab) on the verdict token
    assert res["verdict_token"] > blind + 2.0 and math.isfinite(res["response_mean"])


def test_rejects_a_parquet_without_traces(tiny_text_model: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([{"messages": [{"role": "user", "content": "hi"}]}]), path)
    with pytest.raises(ValueError, match="row 0"):
        verdict_loss(tiny_text_model, path)
