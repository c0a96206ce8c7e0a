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


def test_heldout_accuracy_is_greedy_decoding_among_the_verdicts(
    tiny_text_model: Path, tmp_path: Path
) -> None:
    """The probe's prediction per judgment equals HF greedy generation restricted to the three verdict tokens."""
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from omni_rl.learn.synthetic import TEMPLATE, to_pair
    from omni_rl.prompts import render_judge_messages

    tok = AutoTokenizer.from_pretrained(tiny_text_model)
    write_task(tmp_path, tok, TaskSpec(n_train=8, n_heldout=6, n_policy=2))
    heldout = tmp_path / "pairs_heldout.jsonl"
    res = verdict_accuracy(tiny_text_model, heldout)
    assert res["judgments"] == 12 and sum(res["predictions"].values()) == 12
    model = AutoModelForCausalLM.from_pretrained(tiny_text_model, dtype=torch.float32).eval()
    allowed = [tok.convert_tokens_to_ids(t) for t in ("A", "B", "t")]
    names = dict(zip(allowed, ("A", "B", "tie"), strict=True))
    counts: dict[str, int] = {}
    right = 0
    for line in heldout.read_text().splitlines():
        pair = to_pair(json.loads(line))
        for swap in (False, True):
            op = pair.ordered(swap)
            msgs = render_judge_messages(op, TEMPLATE).messages
            ids = list(tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)["input_ids"])
            ids.append(tok.convert_tokens_to_ids("<think>"))
            out = model.generate(torch.tensor([ids]), max_new_tokens=1, do_sample=False,
                                 prefix_allowed_tokens_fn=lambda *_: allowed)  # fmt: skip
            pred = names[int(out[0, -1])]
            counts[pred] = counts.get(pred, 0) + 1
            right += pred == op.label
    assert counts == res["predictions"]
    assert res["accuracy"] == pytest.approx(right / 12)
