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
    model_dir: str | Path,
    pairs_jsonl: str | Path,
    template: str | None = None,
    samples: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Held-out accuracy of the decoded, strictly parsed verdict in both A/B orders, without a server.

    Greedy traces give `accuracy` (what `omni-rl eval` serves at temperature 0); `samples` traces per judgment
    at temperature 1 give `sampled_accuracy` by gold label (what GenRM GRPO's groups see: a greedy 0.9 can
    hide an unsure judge). Whole traces are decoded because GRPO may move the decision off the first token
    (it learned to write "he same" for a tie); an unparsable trace counts as wrong, as `invalid`.
    """
    import json
    from collections import Counter

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from omni_rl.learn.synthetic import TEMPLATE, to_pair
    from omni_rl.prompts import render_judge_messages

    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompts, labels = [], []
    for line in Path(pairs_jsonl).read_text().splitlines():
        pair = to_pair(json.loads(line))
        for swap in (False, True):
            op = pair.ordered(swap)
            msgs = render_judge_messages(op, template or TEMPLATE).messages
            prompts.append(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
            labels.append(op.label)
    torch.manual_seed(seed)
    greedy = _decode_verdicts(model, tok, prompts, 1, do_sample=False)
    sampled = _decode_verdicts(model, tok, prompts, samples, do_sample=True) if samples else []
    decisive = [i for i, lab in enumerate(labels) if lab != "tie"]
    by_label: dict[str, list[float]] = {}
    for i, lab in enumerate(labels if sampled else []):
        got = sampled[i * samples : (i + 1) * samples]
        by_label.setdefault(lab, []).append(sum(g == lab for g in got) / samples)
    return {
        "judgments": len(labels),
        "accuracy": sum(g == lab for g, lab in zip(greedy, labels, strict=True)) / max(1, len(labels)),
        "accuracy_no_tie": sum(greedy[i] == labels[i] for i in decisive) / max(1, len(decisive)),
        "predictions": dict(Counter(greedy)),
        "sampled_accuracy": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_label.items())},
        "samples": samples,
    }


def _decode_verdicts(model: Any, tok: Any, prompts: list[str], n: int, do_sample: bool) -> list[str]:
    """Each trace parsed strictly, as the GenRM reward parses it; `invalid` when unparsable."""
    from omni_rl.judge.parse import parse_verdict

    return [
        parse_verdict(t, "strict").verdict or "invalid" for t in decode(model, tok, prompts, n, do_sample)
    ]


def decode(
    model: Any, tok: Any, prompts: list[str], n: int = 1, do_sample: bool = False, chunk: int = 32
) -> list[str]:
    """`n` traces per prompt (left-padded batches of `chunk` prompts), prompt by prompt in order."""
    import torch

    out: list[str] = []
    for k in range(0, len(prompts), chunk):
        enc = tok(prompts[k : k + chunk], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=24, do_sample=do_sample, temperature=1.0 if do_sample else None,
                                 top_p=1.0, top_k=None, num_return_sequences=n, pad_token_id=tok.pad_token_id)  # fmt: skip
        out.extend(tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    return out
