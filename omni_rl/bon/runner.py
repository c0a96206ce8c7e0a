"""`omni-rl bon`: sample N candidates per prompt from a policy endpoint, pick with an RM, write jsonl.

Resumable by construction: every finished prompt is one fsync'ed line of the output file, and every
generated candidate set is one line of `<output>.candidates.jsonl`, so a killed run restarts without
regenerating finished prompts (nor prompts whose candidates were already sampled). A torn last line
(the kill hit mid-write) is cut off. The run's settings are pinned in `<output>.meta.json`; resuming
with different ones is refused instead of mixing two experiments in one file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omni_rl.bon.rows import BonRow, dumps, load_rows, row_to_dict, write_rejects
from omni_rl.data.schema import PLACEHOLDERS, Response, placeholder_counts
from omni_rl.judge.client import JudgeClient
from omni_rl.judge.media import to_openai_messages
from omni_rl.rm.candidates import CandidateJudge
from omni_rl.rm.config import RMConfig
from omni_rl.rm.model import RewardModel
from omni_rl.rm.strategies import STRATEGIES, select
from omni_rl.utils.aio import gather_or_cancel

log = logging.getLogger(__name__)


@dataclass
class PolicyConfig:
    """The policy endpoint that proposes candidates (any OpenAI-compatible server, e.g. vLLM)."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "policy"
    api_key: str | None = None
    n: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0  # per-prompt seed = seed + stable hash of the row id (recorded per row)
    system_prompt: str | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    max_concurrency: int = 8
    timeout: float = 300.0
    max_retries: int = 4


@dataclass
class BonConfig:
    """Everything `omni-rl bon` needs; every key can be overridden as key=value."""

    input: str = ""
    format: str = "prompts"  # prompts | any omni_rl.data loader name (hh_rlhf, mm_rlhf, ...)
    media_root: str | None = None
    limit: int | None = None
    output: str = "outputs/bon/bon.jsonl"
    strategies: list[str] = field(default_factory=lambda: ["knockout"])
    sweep: list[int] = field(default_factory=list)  # Ns to select at (<= policy.n); empty = [policy.n]
    concurrency: int = 4  # prompts in flight
    progress: bool = True
    evaluate: bool = True  # accuracy report when rows carry answers
    report_dir: str | None = None  # default: <output stem>_report next to the output
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    judge: RMConfig = field(default_factory=RMConfig)


class ResumeMismatchError(RuntimeError):
    """The output file was written with different settings; refuse to mix two runs."""


@dataclass
class RunStats:
    """What a run did (returned to the CLI and tests)."""

    rows: int = 0
    rejected: int = 0
    resumed: int = 0  # prompts already finished in the output
    generated: int = 0  # prompts sampled in this run
    reused_candidates: int = 0  # prompts whose candidates came from the cache
    finished: int = 0  # prompts finished in this run
    judge_calls: int = 0
    fallbacks: int = 0


def sweep_ns(cfg: BonConfig) -> list[int]:
    """The Ns to select at, checked against policy.n."""
    ns = sorted(set(cfg.sweep)) or [cfg.policy.n]
    bad = [n for n in ns if n < 1 or n > cfg.policy.n]
    if bad:
        raise ValueError(f"sweep values {bad} must be within 1..policy.n={cfg.policy.n}")
    return ns


def row_seed(base: int, row_id: str) -> int:
    """A stable per-prompt sampling seed (recorded in the output)."""
    digest = hashlib.sha256(row_id.encode()).digest()
    return (base + int.from_bytes(digest[:4], "little")) % (2**31 - 1)


def fingerprint(cfg: BonConfig) -> dict[str, Any]:
    """The settings a resumed run must share with the one that wrote the file."""
    p, j = cfg.policy, cfg.judge
    return {
        "input": str(Path(cfg.input).resolve()),
        "format": cfg.format,
        "policy": {k: getattr(p, k) for k in ("model", "n", "temperature", "top_p", "max_tokens", "seed")}
        | {"system_prompt": p.system_prompt, "extra_body": p.extra_body},
        "judge": {k: getattr(j, k) for k in ("kind", "model", "template", "pointwise_template", "parse_mode")}
        | {"temperature": j.temperature, "seed": j.seed, "debias": j.debias}
        | {"scalar_fn": j.scalar_fn, "bt_path": j.bt_path},
        "strategies": sorted(cfg.strategies),
        "sweep": sweep_ns(cfg),
    }


# -- files ---------------------------------------------------------------------------------------------
def read_jsonl_repairing(path: Path) -> list[dict[str, Any]]:
    """Records of a jsonl file; a torn final line (killed mid-write) is cut off the file."""
    if not path.exists():
        return []
    data = path.read_bytes()
    records, good_end = [], 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
        good_end += len(line)
    if good_end != len(data):
        log.warning(
            "%s: cutting %d bytes of a torn last line (interrupted write)", path, len(data) - good_end
        )
        with path.open("r+b") as f:
            f.truncate(good_end)
    return records


class JsonlAppender:
    """Append one line per record and fsync, so a kill loses at most the line being written."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Write and make durable."""
        self._f.write(dumps(record) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        """Close the file."""
        self._f.close()


def check_meta(cfg: BonConfig, out: Path) -> None:
    """Pin the run settings next to the output; refuse to resume with different ones."""
    meta_path = out.with_suffix(out.suffix + ".meta.json")
    fp = json.loads(json.dumps(fingerprint(cfg)))
    if meta_path.exists() and out.exists() and out.stat().st_size > 0:
        old = json.loads(meta_path.read_text())
        if old != fp:
            diff = sorted(k for k in fp if fp.get(k) != old.get(k))
            raise ResumeMismatchError(
                f"{out} was written with different settings ({', '.join(diff)}); "
                f"use a new output=... or delete {out} and {meta_path} to start over"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(fp, indent=2))


# -- sampling ------------------------------------------------------------------------------------------
def policy_messages(row: BonRow, system_prompt: str | None) -> list[dict[str, Any]]:
    """The policy's chat: the prompt with one placeholder per media item (inline ones are kept)."""
    inline = placeholder_counts(row.prompt)
    lead = [PLACEHOLDERS[k] for k in PLACEHOLDERS if not inline[k] for _ in range(len(getattr(row.media, k)))]
    content = "\n".join([*lead, row.prompt]) if lead else row.prompt
    msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return to_openai_messages([*msgs, {"role": "user", "content": content}], row.media)


async def sample_candidates(client: JudgeClient, row: BonRow, pc: PolicyConfig) -> dict[str, Any]:
    """One request with n=N sampling; returns the candidates record (seed and usage included)."""
    seed = row_seed(pc.seed, row.id)
    kwargs: dict[str, Any] = {
        "n": pc.n,
        "temperature": pc.temperature,
        "top_p": pc.top_p,
        "max_tokens": pc.max_tokens,
        "seed": seed,
    }
    if pc.extra_body:
        kwargs["extra_body"] = dict(pc.extra_body)
    res = await client.chat(policy_messages(row, pc.system_prompt), **kwargs)
    choices = sorted(res.raw.get("choices") or [], key=lambda c: c["index"])
    if len(choices) != pc.n:
        raise RuntimeError(f"row {row.id!r}: policy returned {len(choices)} choices for n={pc.n}")
    candidates = [
        {"index": i, "text": c["message"].get("content") or "", "finish_reason": c.get("finish_reason")}
        for i, c in enumerate(choices)
    ]
    return {"id": row.id, "seed": seed, "n": pc.n, "candidates": candidates, "usage": res.raw.get("usage")}


# -- selection -----------------------------------------------------------------------------------------
async def select_all(
    rm: RewardModel, row: BonRow, candidates: list[dict[str, Any]], strategies: list[str], ns: list[int]
) -> dict[str, Any]:
    """Every strategy at every N (largest first so smaller brackets reuse its cached calls)."""
    responses = [Response(text=c["text"]) for c in candidates]
    cj: CandidateJudge = rm.candidates(row.prompt, responses, row.media, row.criteria)
    selections: dict[str, dict[str, Any]] = {s: {} for s in strategies}
    try:
        for n in sorted(ns, reverse=True):
            sels = await asyncio.gather(*(select(s, n, cj, cj, debias=rm.config.debias) for s in strategies))
            for s, sel in zip(strategies, sels, strict=True):
                selections[s][str(n)] = sel.to_dict()
    except BaseException:
        cj.cancel()  # a failed or cancelled prompt leaves no judge call running
        raise
    pairs, points = await cj.history()
    judgments = [
        {
            "first": j.first,
            "second": j.second,
            "verdict": j.verdict,
            "p": j.p,
            "reason": j.reason,
            "text": j.text,
        }
        for j in pairs
    ]
    scores = [{"index": s.index, "score": s.score, "reason": s.reason, "text": s.text} for s in points]
    return {"selections": selections, "judgments": judgments, "scores": scores, "judge_calls": cj.calls}


async def process_row(
    row: BonRow,
    cfg: BonConfig,
    policy: JudgeClient,
    rm: RewardModel,
    cache: dict[str, dict[str, Any]],
    cand_out: JsonlAppender,
    stats: RunStats,
) -> dict[str, Any]:
    """Candidates (cached or sampled) then selections: the full output record of one prompt."""
    gen = cache.get(row.id)
    if gen is None:
        gen = await sample_candidates(policy, row, cfg.policy)
        cand_out.write(gen)
        stats.generated += 1
    else:
        stats.reused_candidates += 1
    picked = await select_all(rm, row, gen["candidates"], cfg.strategies, sweep_ns(cfg))
    picks = {s: {n: d["pick"] for n, d in by_n.items()} for s, by_n in picked["selections"].items()}
    stats.judge_calls += picked["judge_calls"]
    stats.fallbacks += sum(d["fallback"] for by_n in picked["selections"].values() for d in by_n.values())
    return {
        **row_to_dict(row),
        "seed": gen["seed"],
        "n": gen["n"],
        "policy": {
            "model": cfg.policy.model,
            "temperature": cfg.policy.temperature,
            "top_p": cfg.policy.top_p,
        },
        "candidates": gen["candidates"],
        "picks": picks,
        **picked,
    }


def _progress(enabled: bool, total: int, done: int) -> Any:
    """A rich progress bar (or a no-op stand-in when disabled)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    prog = Progress(
        TextColumn("[bold]best-of-N"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        disable=not enabled,
    )
    task = prog.add_task("bon", total=total, completed=done, info="")
    return prog, task


async def run(cfg: BonConfig, on_record: Callable[[dict[str, Any]], None] | None = None) -> RunStats:
    """Run (or resume) best-of-N over the input; returns counts of what this run did."""
    if not cfg.input:
        raise ValueError("set input=<prompts file> (jsonl/json/parquet)")
    unknown = [s for s in cfg.strategies if s not in STRATEGIES]
    if unknown or not cfg.strategies:
        raise ValueError(f"strategies {unknown or '[]'} unknown; choose from {', '.join(STRATEGIES)}")
    out = Path(cfg.output)
    check_meta(cfg, out)
    rows, rejects = load_rows(cfg.input, cfg.format, cfg.media_root, cfg.limit)
    write_rejects(rejects, out.with_suffix(out.suffix + ".rejects.jsonl"))
    if rejects:
        log.warning("%d row(s) rejected, see %s.rejects.jsonl", len(rejects), out)
    done = {r["id"] for r in read_jsonl_repairing(out)}
    cand_path = out.with_suffix(out.suffix + ".candidates.jsonl")
    cache = {r["id"]: r for r in read_jsonl_repairing(cand_path) if r.get("n") == cfg.policy.n}
    todo = [r for r in rows if r.id not in done]
    stats = RunStats(rows=len(rows), rejected=len(rejects), resumed=len(rows) - len(todo))
    pc = cfg.policy
    policy = JudgeClient(
        pc.base_url, pc.model, api_key=pc.api_key, max_concurrency=pc.max_concurrency,
        timeout=pc.timeout, max_retries=pc.max_retries,
    )  # fmt: skip
    rm = RewardModel(cfg.judge)
    out_f, cand_f = JsonlAppender(out), JsonlAppender(cand_path)
    sem = asyncio.Semaphore(max(1, cfg.concurrency))
    prog, task = _progress(cfg.progress, len(rows), stats.resumed)

    async def one(row: BonRow) -> None:
        async with sem:
            record = await process_row(row, cfg, policy, rm, cache, cand_f, stats)
        out_f.write(record)
        stats.finished += 1
        prog.update(task, advance=1, info=f"judge calls {stats.judge_calls}")
        if on_record is not None:
            on_record(record)

    try:
        with prog:
            await gather_or_cancel(one(r) for r in todo)
    finally:
        out_f.close()
        cand_f.close()
        await policy.aclose()
        await rm.aclose()
    log.info("best-of-N: %s; judge %s", asdict(stats), rm.stats.as_dict())
    return stats
