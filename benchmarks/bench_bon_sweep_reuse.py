"""Claim: one judge cache per prompt makes an N sweep with several strategies much cheaper.

`omni-rl bon` judges every (strategy, N) of a sweep on the first N candidates through one cached
per-prompt judge, so knockout reuses round-robin's pairs and every smaller N reuses the largest N's
calls. This measures judge calls and wall time of that against a fresh judge per (strategy, N),
on the same server, the same candidates and the same prompts, side by side; prints both ratios.

    .venv/bin/python benchmarks/bench_bon_sweep_reuse.py --base-url http://127.0.0.1:8011/v1 --model tiny
    (without --base-url it starts its own vLLM CPU server on the tiny text model)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from omni_rl.api import RewardModel, RMConfig
from omni_rl.rm.strategies import select

HH = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real" / "hh_rlhf_pairs.jsonl"
VERDICTS = [f"<think>ok</think><answer>{v}</answer>" for v in ("A", "B", "tie")]
SCORES = [f"<think>ok</think><answer>{s}</answer>" for s in (2, 5, 9)]
STRATEGIES = ("pointwise", "knockout", "round_robin")
SWEEP = (1, 2, 4, 8)


def _rm(base_url: str, model: str) -> RewardModel:
    cfg = RMConfig(
        base_url=base_url, model=model, max_tokens=40, max_concurrency=16,
        extra_body={"structured_outputs": {"choice": VERDICTS}},
        pointwise_extra_body={"structured_outputs": {"choice": SCORES}},
    )  # fmt: skip
    return RewardModel(cfg)


async def _shared(rm: RewardModel, prompt: str, cands: list[str]) -> None:
    cj = rm.candidates(prompt, cands)
    for n in sorted(SWEEP, reverse=True):
        await asyncio.gather(*(select(s, n, cj, cj) for s in STRATEGIES))


async def _fresh(rm: RewardModel, prompt: str, cands: list[str]) -> None:
    for n in sorted(SWEEP, reverse=True):
        jobs = []
        for s in STRATEGIES:
            cj = rm.candidates(prompt, cands)
            jobs.append(select(s, n, cj, cj))
        await asyncio.gather(*jobs)


async def _measure(fn, rm: RewardModel, rows: list[tuple[str, list[str]]]) -> tuple[int, float]:
    before = rm.client.stats.calls
    t0 = time.perf_counter()
    await asyncio.gather(*(fn(rm, p, c) for p, c in rows))
    return rm.client.stats.calls - before, time.perf_counter() - t0


async def main(base_url: str, model: str, prompts: int, rounds: int) -> None:
    rows = []
    for line in HH.read_text().splitlines()[:prompts]:
        r = json.loads(line)  # 8 real candidate texts per prompt: the pair's answers and shifted copies
        rows.append(
            (
                r["text_prompt"],
                [r["answer_a"], r["answer_b"], *[f"{r['answer_a'][:k]}" for k in range(10, 70, 10)]],
            )
        )
    rm = _rm(base_url, model)
    shared_calls, fresh_calls, t_shared, t_fresh = 0, 0, 0.0, 0.0
    for _ in range(rounds):  # alternate so server load drifts hit both the same way
        c, t = await _measure(_shared, rm, rows)
        shared_calls, t_shared = shared_calls + c, t_shared + t
        c, t = await _measure(_fresh, rm, rows)
        fresh_calls, t_fresh = fresh_calls + c, t_fresh + t
    await rm.aclose()
    print(f"prompts={prompts} rounds={rounds} strategies={STRATEGIES} sweep={SWEEP} (N=8 candidates)")
    print(
        f"shared cache : {shared_calls / rounds / prompts:6.1f} judge calls/prompt  {t_shared / rounds:7.2f} s/round"
    )
    print(
        f"fresh judges : {fresh_calls / rounds / prompts:6.1f} judge calls/prompt  {t_fresh / rounds:7.2f} s/round"
    )
    print(f"ratio fresh/shared: calls x{fresh_calls / shared_calls:.2f}, wall time x{t_fresh / t_shared:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url")
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if args.base_url:
        asyncio.run(main(args.base_url, args.model, args.prompts, args.rounds))
    else:
        from omni_rl.learn.tiny_models import ensure_tiny_models
        from omni_rl.testing.servers import VLLMServer

        models = ensure_tiny_models(Path("/tmp/omni-rl-tiny"))
        with VLLMServer(model=str(models["text"]), served_model_name="tiny") as server:
            asyncio.run(main(server.base_url, "tiny", args.prompts, args.rounds))
