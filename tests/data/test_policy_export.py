"""`omni-rl data policy-prompts`: the policy-GRPO parquet from the same loaders, with media, criteria and the
reference answer, loaded unchanged by verl 0.9.1's RLHFDataset and read by reward_fns/omni.py's helpers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from omni_rl.rewards.api import context_from_extra_info, reference_from

REPO = Path(__file__).resolve().parents[2]


def test_policy_prompts_from_real_mm_rlhf(
    real_fixtures: Path, tmp_path: Path, stand_in, jsonl, tiny_vl_model: Path
) -> None:
    from omegaconf import OmegaConf
    from transformers import AutoProcessor
    from verl.utils.dataset.rl_dataset import RLHFDataset

    raw = [json.loads(line) for line in (real_fixtures / "mm_rlhf_reward_bench.jsonl").open()]
    rows, seen = [], set()
    for r in raw:  # three image rows with distinct prompt and image
        if r.get("image") and (r["prompt"], r["image"]) not in seen and len(rows) < 3:
            seen.add((r["prompt"], r["image"]))
            rows.append(r)
    rows.append(dict(rows[0], id="dup"))  # same prompt and image: one policy row
    rows.append({"id": "bad"})  # a broken row: rejected, counted, written
    root = stand_in([r["image"] for r in rows[:3]])
    src = jsonl(tmp_path / "mm.jsonl", rows)
    out = tmp_path / "policy"
    cmd = [sys.executable, "-m", "omni_rl.cli", "data", "policy-prompts", "loader=mm_rlhf", f"path={src}",
           f"media_root={root}", f"out_dir={out}"]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rows_out"] == {"train": 3} and stats["duplicate_prompts"] == 1 and stats["rejects"] == 1
    assert len((out / "rejects.jsonl").read_text().splitlines()) == 1

    table = pq.read_table(out / "train.parquet").to_pylist()
    for row, src_row in zip(table, rows[:3], strict=True):
        assert row["prompt"][0]["content"].count("<image>") == len(row["images"]) == 1
        assert Path(row["images"][0]).is_file()
        assert row["reward_model"]["ground_truth"] == src_row["chosen"]
        info = row["extra_info"]
        ctx = context_from_extra_info(info)
        assert (
            ctx is not None and ctx.prompt == src_row["prompt"] and ctx.prompt_media.images == row["images"]
        )
        assert reference_from(info, row["reward_model"]["ground_truth"]).text == src_row["chosen"]

    processor = AutoProcessor.from_pretrained(tiny_vl_model)
    cfg = OmegaConf.create({"max_prompt_length": 65536, "cache_dir": str(tmp_path / "c"), "filter_overlong_prompts": True,
                            "filter_overlong_prompts_workers": None, "return_raw_chat": True})  # fmt: skip
    ds = RLHFDataset(str(out / "train.parquet"), processor.tokenizer, cfg, processor=processor)
    assert len(ds) == 3
    parts = ds[0]["raw_prompt"][0]["content"]
    assert [p["type"] for p in parts].count("image") == 1
