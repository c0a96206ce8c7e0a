"""Claim: BTScorer micro-batches concurrent single-item calls (verl runs sync reward fns in threads).

Measures, side by side in one run, scoring N items (a) one call at a time and (b) from N threads at once
through `BTScorer.score_one`, and prints the forward counts and the wall-clock ratio.

    .venv/bin/python benchmarks/bt_microbatch.py [BT_MODEL_DIR] [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import torch


def _model_dir() -> str:
    """A BT model on the tiny text backbone (built once under /tmp if no folder is given)."""
    from transformers import AutoProcessor

    from omni_rl.bt.model import BTRewardModel
    from omni_rl.learn.tiny_models import ensure_tiny_models

    text = ensure_tiny_models(tempfile.gettempdir() + "/omni-rl-tiny")["text"]
    out = tempfile.mkdtemp(prefix="bt-bench-")
    torch.manual_seed(0)
    BTRewardModel.from_backbone(text).save_pretrained(out)
    AutoProcessor.from_pretrained(text).save_pretrained(out)
    return out


def main() -> None:
    """Sequential vs concurrent scoring of the same items; checks the scores agree."""
    from omni_rl.bt.collate import ScoreItem
    from omni_rl.bt.score import BTScorer
    from omni_rl.data.schema import Response

    path = sys.argv[1] if len(sys.argv) > 1 else _model_dir()
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    scorer = BTScorer(path, batch_size=16)
    items = [
        ScoreItem(
            f"Question {i}: how do I bake bread?", Response("Mix flour, water and yeast. " * (1 + i % 4))
        )
        for i in range(n)
    ]
    loaded = scorer.loaded
    calls = {"n": 0}
    real_forward = loaded.forward

    def counting(batch):  # type: ignore[no-untyped-def]
        calls["n"] += -(-len(batch) // loaded.batch_size)  # padded model passes
        return real_forward(batch)

    loaded.forward = counting  # type: ignore[method-assign]
    scorer.score_one(items[0])  # warm-up
    times: dict[str, list[float]] = {"sequential": [], "concurrent": []}
    passes: dict[str, int] = {}
    for _ in range(3):  # alternate the two modes so machine load hits both alike; report medians
        calls["n"] = 0
        t0 = time.perf_counter()
        seq = [scorer.score_one(it) for it in items]
        times["sequential"].append(time.perf_counter() - t0)
        passes["sequential"] = calls["n"]
        calls["n"] = 0
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=n) as pool:
            conc = list(pool.map(scorer.score_one, items))
        times["concurrent"].append(time.perf_counter() - t0)
        passes["concurrent"] = calls["n"]
    t_seq, t_conc = statistics.median(times["sequential"]), statistics.median(times["concurrent"])
    f_seq, f_conc = passes["sequential"], passes["concurrent"]
    assert all(abs(a - b) < 1e-4 for a, b in zip(seq, conc, strict=True)), "scores differ"
    print(f"items={n} torch_threads={torch.get_num_threads()}")
    print(f"sequential : median {t_seq:7.2f} s  model passes={f_seq}")
    print(f"concurrent : median {t_conc:7.2f} s  model passes={f_conc}")
    print(f"speed-up (sequential / concurrent) = {t_seq / t_conc:.2f}x")


if __name__ == "__main__":
    main()
