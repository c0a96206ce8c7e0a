"""The `omni-rl synth` command: load prompts, generate, judge both orders, apply the rules, write outputs
(see the package docstring for the whole pipeline)."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omni_rl.curate.synth import outputs
from omni_rl.curate.synth.calls import (
    ORDERS,
    StepStore,
    gen_key,
    generate,
    judge_key,
    judge_order,
    make_client,
    presumed_pair,
    teacher_identity,
    teacher_pipeline,
)
from omni_rl.curate.synth.config import SynthConfig, SynthPrompt, check_config, load_prompts, pair_names
from omni_rl.curate.synth.outputs import SynthPair
from omni_rl.curate.synth.rules import decide
from omni_rl.judge.budget import FailureBudget, FailureBudgetExceeded
from omni_rl.utils.aio import gather_or_cancel
from omni_rl.utils.config import config_help, load_config


def teacher_budget(cfg: SynthConfig) -> FailureBudget:
    """The teacher's windowed failure budget; `teacher.max_*_rate=null` counts without stopping."""
    t = cfg.teacher
    return FailureBudget(
        f"synth teacher {t.model}", window=t.budget_window,
        max_rates={"transport": t.max_transport_rate, "parse": t.max_parse_rate, "truncated": t.max_truncated_rate},
        rate_keys={k: f"teacher.max_{k}_rate" for k in ("transport", "parse", "truncated")},
        hint="The stores keep every finished call: fix the teacher (or the limit) and rerun to resume.",
    )  # fmt: skip


def form_pair(p: SynthPrompt, names: tuple[str, str], gens: dict[str, dict[str, Any]]) -> SynthPair:
    """A presumed pair from two candidate answers, or the reason there is none."""
    out = SynthPair(prompt=p, names=names)
    a, b = (gens.get(n) or {} for n in names)
    if not (a.get("ok") and b.get("ok")):
        out.skip = "candidate_failed"
    elif not a["text"].strip() or not b["text"].strip():
        out.skip = "empty_candidate"
    elif a["text"].strip() == b["text"].strip():
        out.skip = "identical_candidates"
    else:
        out.pair = presumed_pair(p, (names[0], a["text"]), (names[1], b["text"]))
    return out


class _Runner:
    """One run: stores, clients, the teacher pipeline and the progress bar."""

    def __init__(self, cfg: SynthConfig, out: Path, progress: Any) -> None:
        self.cfg, self.progress = cfg, progress
        self.gens, self.judgements = StepStore(out / "generations.jsonl"), StepStore(out / "judgements.jsonl")
        self.loads = {"generate": asdict(self.gens.load()), "judge": asdict(self.judgements.load())}
        self.clients = {n: make_client(c) for n, c in cfg.candidates.items()}
        self.pipe = teacher_pipeline(cfg.teacher, teacher_budget(cfg))
        self.teacher_id = teacher_identity(cfg.teacher)
        self.names = pair_names(cfg)
        self.reused: Counter[str] = Counter()
        self.prompts = asyncio.Semaphore(max(1, cfg.concurrency))  # prompts in flight
        self.calls = asyncio.Semaphore(max(1, cfg.concurrency))  # model calls in flight, all endpoints
        self.tasks = {
            "generate": progress.add_task("generate", total=0),
            "judge": progress.add_task("judge (both orders)", total=0),
        }

    async def _cached(
        self, step: str, store: StepStore, key: str, call: Callable[[], Awaitable[dict]]
    ) -> dict[str, Any]:
        """The stored record for `key`, or the call's record (appended to the store at once)."""
        rec = store.done(key, self.cfg.retry_failed)
        if rec is not None:
            self.reused[step] += 1
        else:
            async with self.calls:
                rec = await call()
            store.append(rec)
        self.progress.advance(self.tasks[step])
        return rec

    async def prompt(self, p: SynthPrompt) -> list[SynthPair]:
        """Every candidate answers, then every pair is judged in both orders."""
        async with self.prompts:
            names = list(self.cfg.candidates)
            recs = await asyncio.gather(*(self._generate(p, n) for n in names))
            outcomes = [form_pair(p, pn, dict(zip(names, recs, strict=True))) for pn in self.names]
            for o in outcomes:
                if o.pair is None:
                    self.progress.advance(self.tasks["judge"], len(ORDERS))
            await asyncio.gather(*(self._judge(o) for o in outcomes if o.pair is not None))
            return outcomes

    async def _generate(self, p: SynthPrompt, name: str) -> dict[str, Any]:
        """One candidate's answer to one prompt (stored or new)."""
        c = self.cfg.candidates[name]
        return await self._cached(
            "generate", self.gens, gen_key(p, name, c), lambda: generate(self.clients[name], p, name, c)
        )

    async def _judge(self, o: SynthPair) -> None:
        """Both orders of one pair, then the rules."""
        assert o.pair is not None
        keys = [judge_key(o.pair, order, self.teacher_id) for order in ORDERS]
        pair = o.pair
        recs = await asyncio.gather(*(
            self._cached("judge", self.judgements, k, lambda order=order, k=k: judge_order(self.pipe, pair, order, k))
            for order, k in zip(ORDERS, keys, strict=True)
        ))  # fmt: skip
        o.judgements = dict(zip(ORDERS, recs, strict=True))
        texts = {"chosen": o.pair.chosen.text, "rejected": o.pair.rejected.text}
        o.decision = decide(o.judgements["AB"], o.judgements["BA"], texts, self.cfg.rules)

    async def run(self, prompts: list[SynthPrompt]) -> list[SynthPair]:
        """All prompts (bounded by `concurrency`); on any error the rest is cancelled, stores closed."""
        self.progress.update(self.tasks["generate"], total=len(prompts) * len(self.cfg.candidates))
        self.progress.update(self.tasks["judge"], total=len(prompts) * len(self.names) * len(ORDERS))
        try:
            done = await gather_or_cancel(self.prompt(p) for p in prompts)
        finally:
            self.gens.close()
            self.judgements.close()
            for c in [*self.clients.values(), self.pipe.client]:
                await c.aclose()
        return [o for per_prompt in done for o in per_prompt]

    def this_run(self) -> dict[str, Any]:
        """What this process did: reused records, store loads, client and budget counters."""
        clients = {n: c.stats.as_dict("") for n, c in self.clients.items()}
        return {
            "reused": dict(self.reused), "stores": self.loads,
            "clients": {**clients, "teacher": self.pipe.client.stats.as_dict("")},
            "teacher_budget": self.pipe.budget.metrics(""),
        }  # fmt: skip


def _progress(enabled: bool) -> Any:
    """A rich progress bar with one line per step (or a no-op when disabled)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]synth {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    return Progress(*columns, disable=not enabled)


async def run(cfg: SynthConfig) -> dict[str, Any]:
    """Run (or resume) synthesis and write every output; returns the stats dict."""
    check_config(cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prompts, rejects = load_prompts(cfg.input, cfg.format, cfg.media_root, cfg.limit)
    media_root = Path(cfg.media_root) if cfg.media_root else Path(cfg.input).parent
    progress = _progress(cfg.progress)
    with progress:
        runner = _Runner(cfg, out, progress)
        outcomes = await runner.run(prompts)
    gens = [runner.gens.records[gen_key(p, n, c)] for p in prompts for n, c in cfg.candidates.items()]
    return write_outputs(cfg, out, media_root, (prompts, rejects, gens, outcomes), runner.this_run())


def write_outputs(
    cfg: SynthConfig, out: Path, media_root: Path, state: tuple[list, list, list, list], this_run: dict
) -> dict[str, Any]:
    """pairs.jsonl, sft.parquet, rejects.jsonl, stats.json/.md from the run's records."""
    import json

    prompts, rejects, gens, outcomes = state
    n_pairs = outputs.write_pairs(outcomes, out / "pairs.jsonl", media_root, cfg.teacher.model)
    rows, sft_skipped = outputs.sft_rows(outcomes, cfg.sft_template or cfg.teacher.template)
    outputs.write_sft(rows, out / "sft.parquet")
    reject_lines = outputs.reject_lines(rejects, gens, outcomes)
    outputs.write_jsonl(reject_lines, out / "rejects.jsonl")
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    models = {n: c.model for n, c in cfg.candidates.items()} | {"teacher": cfg.teacher.model}
    stats = {
        "steps": outputs.step_counts(len(prompts), len(rejects), gens, outcomes),
        "outputs": {"pairs": n_pairs, "sft_traces": len(rows), "sft_skipped": sft_skipped, "rejects": len(reject_lines)},
        "agreement": outputs.agreement(outcomes),
        **outputs.balance_and_lengths(pairs, rows),
        "endpoints": outputs.endpoint_costs(gens, outcomes, models),
        "files": {k: str(out / f) for k, f in (("pairs", "pairs.jsonl"), ("sft", "sft.parquet"),
                                               ("rejects", "rejects.jsonl"), ("stats_md", "stats.md"))},
        "media_root": str(media_root.resolve()),
        "config": asdict(cfg),
        "this_run": this_run,
    }  # fmt: skip
    (out / "stats.json").write_text(json.dumps(stats, indent=2, default=str))
    (out / "stats.md").write_text(outputs.to_markdown(stats))
    return stats


def failure_check(stats: dict[str, Any], max_fraction: float) -> str | None:
    """A message when more candidate or teacher calls failed than allowed, else None."""
    for step in ("generate", "judge"):
        s = stats["steps"][step]
        failed = sum(s["failed"].values())
        if s["calls"] and failed / s["calls"] > max_fraction:
            return f"synth: {failed}/{s['calls']} {step} calls failed (> max_failure_fraction={max_fraction})"
    return None


def main(argv: list[str] | None = None) -> int:
    """CLI entry (`omni-rl synth key=value ...`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__ + "\nkeys (defaults from omni_rl/conf/synth.yaml):\n" + config_help(SynthConfig))
        return 0
    cfg = load_config(SynthConfig, argv, "synth")
    try:
        stats = asyncio.run(run(cfg))
    except FailureBudgetExceeded as exc:
        print(f"synth: stopped: {exc}", file=sys.stderr)
        return 1
    r = stats["steps"]["rules"]
    print(
        f"synth: {stats['steps']['input']['prompts']} prompts -> {stats['outputs']['pairs']} pairs "
        f"(keep {r['keep']}, flip {r['flip']}, drop {r['drop']} {r['drop_reasons']}), "
        f"{stats['outputs']['sft_traces']} SFT traces; report {stats['files']['stats_md']}"
    )
    problem = failure_check(stats, cfg.max_failure_fraction)
    if not stats["steps"]["input"]["prompts"]:
        problem = f"synth: no usable prompt in {cfg.input} ({stats['steps']['input']['rejected']} rejected)"
    if problem:
        print(f"{problem}; see {stats['files']['rejects']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
