"""Claim: our reward path (reward_fns/omni.py → PolicyJudge → JudgePipeline → JudgeClient) costs ≤ 5% throughput vs raw requests.

Side by side, on the same server, in one run: N policy samples scored pairwise + swap-debiased through
`compute_score` (2N judge calls), vs the SAME 2N request bodies (rendered once beforehand) sent with a
bare `openai.AsyncOpenAI` and a semaphore of the same width. Runs alternate (raw, ours, raw, ours, …)
to cancel drift on a shared machine; the ratio is median(raw time) / median(our time). Goal ≥ 0.95.

    .venv/bin/python benchmarks/bench_reward_throughput.py [base_url=http://127.0.0.1:8011/v1] \
        [model=tiny] [samples=48] [concurrency=16] [repeats=3]

Without base_url (and $OMNI_RL_TEST_VLLM_URL) it starts a vLLM CPU server with the tiny model.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import openai

from omni_rl.data.schema import Media, PreferencePair, Response
from omni_rl.judge.media import to_openai_messages
from omni_rl.prompts import render_judge_messages
from omni_rl.utils.config import load_config

REGEX = r"<think>[a-z ]{1,12}</think><answer>(A|B)</answer>"


@dataclass
class Args:
    base_url: str | None = None
    model: str = "tiny"
    samples: int = 48
    concurrency: int = 16
    repeats: int = 3
    max_tokens: int = 48


def _rows(n: int, tag: str) -> list[tuple[str, str, str]]:
    """Distinct prompts per run (tag) so no run benefits from another's prefix cache."""
    return [(f"[{tag}] Question {i}: what is {i} + {i}?", f"It is {2 * i}.", f"{2 * i}") for i in range(n)]


def _sampling(args: Args) -> dict:
    return {"max_tokens": args.max_tokens, "temperature": 0.0, "seed": 0, "logprobs": True, "top_logprobs": 20,
            "extra_body": {"structured_outputs": {"regex": REGEX}}}  # fmt: skip


def _bodies(rows: list[tuple[str, str, str]]) -> list[list[dict]]:
    """Exactly the messages our path sends: both orders of (response, reference) per row."""
    out = []
    for q, resp, ref in rows:
        for a, b in ((resp, ref), (ref, resp)):
            pair = PreferencePair(id="b", task="t2t", prompt=q, prompt_media=Media(), chosen=Response(a),
                                  rejected=Response(b))  # fmt: skip
            jp = render_judge_messages(pair.ordered(False), template="pairwise_tie")
            out.append(to_openai_messages(jp.messages, jp.media))
    return out


async def run_raw(args: Args, base_url: str, tag: str) -> float:
    """Bare AsyncOpenAI, same bodies, same width."""
    bodies = _bodies(_rows(args.samples, tag))
    client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=600)
    sem = asyncio.Semaphore(args.concurrency)

    async def one(msgs: list[dict]) -> None:
        async with sem:
            await client.chat.completions.create(model=args.model, messages=msgs, **_sampling(args))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(m) for m in bodies))
    dt = time.perf_counter() - t0
    await client.close()
    return dt


async def run_ours(args: Args, base_url: str, tag: str) -> float:
    """reward_fns/omni.py over the same rows (prompt rendering, media, parsing and debiasing included)."""
    from reward_fns.omni import compute_score

    kw = {"base_url": base_url, "model": args.model, "max_tokens": args.max_tokens, "max_concurrency": args.concurrency,
          "extra_body": {"structured_outputs": {"regex": REGEX}}, "template": "pairwise_tie"}  # fmt: skip
    rows = _rows(args.samples, tag)
    t0 = time.perf_counter()
    results = await asyncio.gather(*(compute_score("qa", r, g, {"prompt": q}, **kw) for q, r, g in rows))
    dt = time.perf_counter() - t0
    failed = sum(x["judge_failed"] for x in results)
    if failed:
        raise RuntimeError(f"{failed} samples failed during the benchmark")
    return dt


async def alternate(args: Args, base_url: str) -> tuple[list[float], list[float]]:
    """Warm up, then alternate raw and ours in one event loop (the client pool lives across runs)."""
    await run_raw(args, base_url, "warmup")
    raw, ours = [], []
    for i in range(args.repeats):
        raw.append(await run_raw(args, base_url, f"raw{i}"))
        ours.append(await run_ours(args, base_url, f"ours{i}"))
    return raw, ours


def main(argv: list[str] | None = None) -> int:
    args = load_config(Args, list(sys.argv[1:] if argv is None else argv))
    base_url = args.base_url or os.environ.get("OMNI_RL_TEST_VLLM_URL")
    server = None
    if not base_url:
        from omni_rl.learn.tiny_models import ensure_tiny_models
        from omni_rl.testing.servers import VLLMServer

        server = VLLMServer(
            model=str(ensure_tiny_models("/tmp/omni-rl-tiny")["text"]), served_model_name=args.model
        )
        base_url = server.start().base_url
    try:
        raw, ours = asyncio.run(alternate(args, base_url))
    finally:
        if server is not None:
            server.stop()
    calls = 2 * args.samples
    ratio = statistics.median(raw) / statistics.median(ours)
    print(f"{calls} judge calls per run, concurrency {args.concurrency}, server {base_url}")
    print("| path | runs (s) | median (s) | calls/s |")
    print("|---|---|---|---|")
    for name, xs in (("raw AsyncOpenAI", raw), ("reward_fns/omni.py", ours)):
        med = statistics.median(xs)
        print(f"| {name} | {', '.join(f'{x:.2f}' for x in xs)} | {med:.2f} | {calls / med:.1f} |")
    print(f"throughput ratio (ours / raw) = {ratio:.3f}  (goal ≥ 0.95)")
    print(json.dumps({"args": asdict(args), "raw_s": raw, "ours_s": ours, "ratio": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
