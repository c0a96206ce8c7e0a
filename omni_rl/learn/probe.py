"""Does a merged judge use the pair? Its loss on the verdict token of the SFT traces, beside the floors.

The SFT loss verl logs is a mean over ~11 response tokens of which only the first verdict token carries
information, so "loss 0.10" hides whether the judge reads the responses. This probe loads the *merged*
folder (the one `omni-rl serve` serves) with transformers and scores that token alone: at the
content-blind entropy (~ln 3) the judge ignores the pair, whatever its format looks like when served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def verdict_loss(model_dir: str | Path, sft_parquet: str | Path, limit: int = 256) -> dict[str, float]:
    """Mean cross-entropy of the verdict token (right after `<think>`) and of all response tokens."""
    import pyarrow.parquet as pq
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = pq.read_table(sft_parquet).to_pylist()[:limit]
    verdict, response = [], []
    for i, row in enumerate(rows):
        msgs = row["messages"]
        if msgs[-1]["role"] != "assistant" or not str(msgs[-1]["content"]).startswith("<think>"):
            raise ValueError(f"{sft_parquet} row {i}: last message must be an assistant '<think>...' trace")
        prompt = _ids(tok.apply_chat_template(msgs[:-1], tokenize=True, add_generation_prompt=True))
        full = _ids(tok.apply_chat_template(msgs, tokenize=True))
        with torch.no_grad():
            logp = model(torch.tensor([full])).logits[0].log_softmax(-1)
        targets = torch.tensor(full[len(prompt) :])
        nll = -logp[torch.arange(len(prompt) - 1, len(full) - 1), targets]
        verdict.append(nll[1].item())  # nll[0] is `<think>` itself
        response.append(nll.mean().item())
    n = max(1, len(rows))
    return {"rows": len(rows), "verdict_token": sum(verdict) / n, "response_mean": sum(response) / n}


def _ids(encoded: Any) -> list[int]:
    """Token ids from apply_chat_template's return (a list, or a BatchEncoding in newer transformers)."""
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def verdict_accuracy(
    model_dir: str | Path, pairs_jsonl: str | Path, template: str | None = None
) -> dict[str, Any]:
    """Held-out accuracy of the greedy verdict token in both A/B orders, in seconds and without a server.

    The first token after `<think>` decides the trace (`A`, `B`, or `t` of "the same"), so its argmax is
    the verdict greedy decoding commits to: a quick read of where a checkpoint stands between chain stages.
    """
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from omni_rl.learn.synthetic import TEMPLATE, to_pair
    from omni_rl.prompts import render_judge_messages

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    think = tok.convert_tokens_to_ids("<think>")
    first = {"A": "A", "B": "B", "tie": "t"}
    cand = {k: tok.convert_tokens_to_ids(v) for k, v in first.items()}
    counts = {"right": 0, "n": 0, "right_no_tie": 0, "n_no_tie": 0}
    preds: dict[str, int] = {}
    for line in Path(pairs_jsonl).read_text().splitlines():
        pair = to_pair(json.loads(line))
        for swap in (False, True):
            op = pair.ordered(swap)
            msgs = render_judge_messages(op, template or TEMPLATE).messages
            ids = [*_ids(tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)), think]
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0, -1]
            pred = max(cand, key=lambda k: logits[cand[k]].item())
            preds[pred] = preds.get(pred, 0) + 1
            counts["n"] += 1
            counts["right"] += pred == op.label
            if op.label != "tie":
                counts["n_no_tie"] += 1
                counts["right_no_tie"] += pred == op.label
    return {
        "judgments": counts["n"],
        "accuracy": counts["right"] / max(1, counts["n"]),
        "accuracy_no_tie": counts["right_no_tie"] / max(1, counts["n_no_tie"]),
        "predictions": preds,
    }
