"""The verdict-token probe on a real merged-style model folder: the tiny random-init Qwen2 and the chain's SFT parquet."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from omni_rl.learn.probe import verdict_accuracy, verdict_loss
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


def test_batched_decoding_equals_one_prompt_at_a_time(tiny_text_model: Path, tmp_path: Path) -> None:
    """Left-padded batches must not change a trace: each prompt decoded alone from chat-template ids."""
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from omni_rl.learn.probe import decode
    from omni_rl.learn.synthetic import TEMPLATE, to_pair
    from omni_rl.prompts import render_judge_messages

    tok = AutoTokenizer.from_pretrained(tiny_text_model, padding_side="left")
    write_task(tmp_path, tok, TaskSpec(n_train=8, n_heldout=6, n_policy=2))
    model = AutoModelForCausalLM.from_pretrained(tiny_text_model, dtype=torch.float32).eval()
    torch.manual_seed(0)
    with (
        torch.no_grad()
    ):  # larger random weights: the init's traces are all newlines, these depend on the prompt
        for p in (p for p in model.parameters() if p.dim() > 1):
            p.normal_(0.0, 0.3)
    msgs = [render_judge_messages(to_pair(json.loads(line)).ordered(swap), TEMPLATE).messages
            for line in (tmp_path / "pairs_heldout.jsonl").read_text().splitlines() for swap in (False, True)]  # fmt: skip
    texts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in msgs]
    batched = decode(model, tok, texts, chunk=5)  # prompts of different lengths share a padded batch
    for m, got in zip(msgs, batched, strict=True):
        ids = tok.apply_chat_template(m, tokenize=True, add_generation_prompt=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        alone = model.generate(
            torch.tensor([ids]), max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id
        )
        assert got == tok.decode(alone[0, len(ids) :], skip_special_tokens=True)
    assert len(set(batched)) > 1  # different prompts, different traces: the comparison is not vacuous


def test_accuracy_counts_every_judgment_and_sampling_is_seeded(tiny_text_model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    write_task(
        tmp_path, AutoTokenizer.from_pretrained(tiny_text_model), TaskSpec(n_train=8, n_heldout=6, n_policy=2)
    )
    heldout = tmp_path / "pairs_heldout.jsonl"
    res = verdict_accuracy(tiny_text_model, heldout, samples=3, seed=7)
    assert res["judgments"] == 12 and sum(res["predictions"].values()) == 12
    # a random-init judge writes no parsable verdict: every judgment is counted, as invalid, and wrong
    assert res["predictions"] == {"invalid": 12} and res["accuracy"] == 0.0
    assert set(res["sampled_accuracy"]) <= {"A", "B", "tie"} and all(
        v == 0.0 for v in res["sampled_accuracy"].values()
    )
    assert verdict_accuracy(tiny_text_model, heldout, samples=3, seed=7) == res
