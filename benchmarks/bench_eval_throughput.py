"""Claim: the eval harness adds little over bare concurrent requests to the same judge server.

Measures judged items/s of `run_judge` (render → media → request → parse → jsonl cache → progress)
against raw concurrent `JudgeClient.chat` calls carrying exactly the messages the harness sends (the
judge pipeline's own rendering, neutralised responses included), the same sampling and concurrency, on
the same server. Rounds run in ABBA order (raw, harness, harness, raw, ...) after both message sets
have warmed the server's prefix cache, so drift in a shared machine's load and cache state cancels;
the ratio reported is the median of per-pair ratios. The harness process's CPU time per item is
printed for both sides: it is the harness's real cost, independent of the server's speed.

On a shared machine the server's speed drifts between rounds by more than any harness cost, so the
head-to-head measure runs both sides AT THE SAME TIME against the same server (half the concurrency
each) and counts what each side finished while both were running: any per-item harness overhead shows
up as a smaller share, while load drift hits both sides alike. That ratio is the headline figure.

    .venv/bin/python benchmarks/bench_eval_throughput.py --base-url http://127.0.0.1:8011/v1 --model tiny
    (without --base-url it starts its own vLLM CPU server on the tiny text model)
    --profile out.prof  writes a cProfile of the harness rounds (read with `python -m pstats out.prof`)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from omni_rl.data.loaders import load_pairs
from omni_rl.eval.cache import ResultCache
from omni_rl.eval.judges import AlwaysFirstJudge, GenRMJudge
from omni_rl.eval.runner import random_swap, run_judge
from omni_rl.judge.client import JudgeClient

HH = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real" / "hh_rlhf_pairs.jsonl"


@dataclasses.dataclass
class Timing:
    """One round: items/s on the wall clock and this process's CPU milliseconds per item."""

    rate: float
    cpu_ms: float


async def raw_round(client: JudgeClient, messages: list, sampling: dict, concurrency: int) -> Timing:
    """Bare requests through the same client, bounded like the harness's workers."""
    sem = asyncio.Semaphore(concurrency)

    async def one(m: list) -> None:
        async with sem:
            await client.chat(m, **sampling)

    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(m) for m in messages))
    return Timing(
        len(messages) / (time.perf_counter() - t0), 1000 * (time.process_time() - c0) / len(messages)
    )


async def harness_round(
    client: JudgeClient,
    pairs: list,
    sampling: dict,
    concurrency: int,
    tag: int,
    prof: cProfile.Profile | None,
) -> Timing:
    """The full harness on a fresh cache."""
    judge = GenRMJudge(client, sampling=sampling)
    with tempfile.TemporaryDirectory() as d:
        cache = ResultCache(Path(d) / "c.jsonl")
        cache.load()
        c0, t0 = time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
        res = await run_judge(pairs, judge, f"bench{tag}", cache, concurrency=concurrency, progress=False)
        if prof:
            prof.disable()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        cache.close()
    assert res.judged == len(pairs), res
    return Timing(res.judged / dt, 1000 * cpu / res.judged)


async def ceiling_round(pairs: list) -> float:
    """The harness's own cost per item: a judge that answers instantly, 20 passes over the pairs."""
    many = [dataclasses.replace(p, id=f"{p.id}/{k}") for k in range(20) for p in pairs]
    with tempfile.TemporaryDirectory() as d:
        cache = ResultCache(Path(d) / "c.jsonl")
        t0 = time.perf_counter()
        res = await run_judge(many, AlwaysFirstJudge(), "ceiling", cache, progress=False)
        dt = time.perf_counter() - t0
        cache.close()
    return res.judged / dt


async def head_to_head(client: JudgeClient, pairs: list, messages: list, sampling: dict, concurrency: int,
                       tag: int) -> tuple[int, int, float]:  # fmt: skip
    """Raw and harness concurrently (concurrency/2 each): items each finished while both were fully busy."""
    half = max(1, concurrency // 2)
    raw_done: list[float] = []
    har_done: list[float] = []
    sem = asyncio.Semaphore(half)

    async def one(m: list) -> None:
        async with sem:
            await client.chat(m, **sampling)
        raw_done.append(time.perf_counter())

    async def raw_side() -> None:
        await asyncio.gather(*(one(m) for m in messages))

    async def harness_side() -> None:
        judge = GenRMJudge(client, sampling=sampling)
        with tempfile.TemporaryDirectory() as d:
            cache = ResultCache(Path(d) / "c.jsonl")
            cache.load()
            append = cache.append

            def timed(rec: Any) -> bool:  # the harness's last step per item: its judgment is on disk
                ok = append(rec)
                har_done.append(time.perf_counter())
                return ok

            cache.append = timed  # type: ignore[method-assign]
            await run_judge(pairs, judge, f"h2h{tag}", cache, concurrency=half, progress=False)
            cache.close()

    t0 = time.perf_counter()
    sides = [raw_side(), harness_side()]
    await asyncio.gather(*(sides if tag % 2 == 0 else sides[::-1]))  # alternate which side starts first
    # Both sides kept `half` requests in flight until each had only its last `half` left: cut there, so
    # neither side's tail (when it runs alone, or has nothing left to send) counts for or against it.
    k = len(pairs) - half - 1
    cut = min(sorted(raw_done)[k], sorted(har_done)[k])
    return sum(t <= cut for t in raw_done), sum(t <= cut for t in har_done), cut - t0


def harness_messages(client: JudgeClient, pairs: list, sampling: dict) -> list[Any]:
    """Exactly what the harness sends for each pair (its layout for seed 0, its rendering)."""
    judge = GenRMJudge(client, sampling=sampling)
    return [judge.pipeline.ordered_messages(p.ordered(random_swap(0, p.id))) for p in pairs]


async def main_async(args: argparse.Namespace) -> None:
    pairs, _ = load_pairs("hh_rlhf", args.data)
    pairs = pairs[: args.n]
    sampling = {"temperature": 0.0, "max_tokens": args.max_tokens, "seed": 0}
    client = JudgeClient(args.base_url, args.model, max_concurrency=args.concurrency)
    messages = harness_messages(client, pairs, sampling)
    await raw_round(client, messages, sampling, args.concurrency)  # warm the prefix cache for both sides
    prof = cProfile.Profile() if args.profile else None
    ratios, raws, harnesses = [], [], []
    for r in range(args.rounds):
        first_raw = r % 2 == 0  # ABBA: raw, harness | harness, raw | ...
        if first_raw:
            raw = await raw_round(client, messages, sampling, args.concurrency)
            har = await harness_round(client, pairs, sampling, args.concurrency, r, prof)
        else:
            har = await harness_round(client, pairs, sampling, args.concurrency, r, prof)
            raw = await raw_round(client, messages, sampling, args.concurrency)
        raws.append(raw)
        harnesses.append(har)
        ratios.append(har.rate / raw.rate)
        print(f"round {r} ({'raw first' if first_raw else 'harness first'}): raw {raw.rate:.2f} items/s "
              f"({raw.cpu_ms:.2f} CPU ms/item), harness {har.rate:.2f} items/s ({har.cpu_ms:.2f} CPU ms/item), "
              f"ratio {ratios[-1]:.3f}", flush=True)  # fmt: skip
    h2h = []
    for r in range(args.h2h_rounds):
        n_raw, n_har, window = await head_to_head(client, pairs, messages, sampling, args.concurrency, r)
        h2h.append(n_har / n_raw)
        print(f"head-to-head {r}: in {window:.1f} s with both running, raw finished {n_raw}, harness {n_har} "
              f"(ratio {h2h[-1]:.3f})", flush=True)  # fmt: skip
    await client.aclose()
    if prof:
        prof.dump_stats(args.profile)
    ceiling = await ceiling_round(pairs)
    print(
        f"harness ceiling without a server (always-first judge, cache writes included): {ceiling:.0f} items/s"
    )
    print(f"n={len(pairs)} concurrency={args.concurrency} max_tokens={args.max_tokens} rounds={args.rounds}")
    mr = statistics.median(t.rate for t in raws)
    mh = statistics.median(t.rate for t in harnesses)
    extra = statistics.median(h.cpu_ms - w.cpu_ms for h, w in zip(harnesses, raws, strict=True))
    print(f"median raw {mr:.2f} items/s | median harness {mh:.2f} items/s | "
          f"harness/raw ratio (median of paired rounds) {statistics.median(ratios):.3f} | "
          f"harness extra CPU {extra:.2f} ms/item")  # fmt: skip
    if h2h:
        print(f"head-to-head harness/raw ratio (same server, same time; median of {len(h2h)}): "
              f"{statistics.median(h2h):.3f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--base-url", default="")
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--data", default=str(HH))
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--profile", default="")
    ap.add_argument("--h2h-rounds", type=int, default=3, help="head-to-head rounds (both sides at once)")
    args = ap.parse_args()
    if args.base_url:
        asyncio.run(main_async(args))
        return
    from omni_rl.learn.tiny_models import ensure_tiny_models
    from omni_rl.testing.servers import VLLMServer

    model = ensure_tiny_models("/tmp/omni-rl-tiny")["text"]
    with VLLMServer(model=str(model), served_model_name=args.model) as server:
        args.base_url = server.base_url
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
