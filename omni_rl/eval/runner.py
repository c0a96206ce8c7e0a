"""Run a judge over benchmark pairs: plan (item, order, sample) units, skip cached ones, judge the rest.

Each finished unit is appended to the cache at once, so a killed run loses at most the judgments in
flight. Request failures (after the client's retries) are counted and NOT cached, so a rerun retries
them; past `max_errors` the run stops loudly instead of reporting numbers over a hollowed-out set.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from omni_rl.data.schema import PreferencePair
from omni_rl.eval.cache import ResultCache
from omni_rl.eval.fingerprint import item_hash
from omni_rl.eval.judges import Judge, Unsupported
from omni_rl.eval.records import Record, order_of

ORDERS: tuple[str, ...] = ("random", "both", "source", "chosen_first")


class EvalAborted(RuntimeError):
    """Too many judge requests failed for good; what finished is cached and a rerun resumes."""


class JudgeChanged(RuntimeError):
    """The cache holds judgments of this judge name made with a different fingerprint (new weights/sampling)."""


class SourceOrderUnknown(ValueError):
    """order=source asked for, but the loader does not know which response the source showed first."""


RESUME_MODES: tuple[str, ...] = ("auto", "force")
JUDGE_WARNING_LOGGER = "omni_rl.judge.budget"  # FailureBudget warns once per failed judge call


def random_swap(seed: int, item: str) -> bool:
    """Seeded coin per item: independent of run order and subsetting, so resume keeps the layout."""
    return hashlib.sha256(f"{seed}:{item}".encode()).digest()[0] & 1 == 1


def plan_swaps(pair: PreferencePair, order: str, seed: int) -> list[bool]:
    """The layouts to judge: random (default), both, the source's own order, or chosen always first."""
    if order == "random":
        return [random_swap(seed, pair.id)]
    if order == "both":
        return [False, True]
    if order == "source":
        if "source_first_is_chosen" not in pair.meta:
            raise SourceOrderUnknown(f"pair {pair.id!r}: the loader recorded no source order")
        return [not pair.meta["source_first_is_chosen"]]
    if order == "chosen_first":
        return [False]
    raise ValueError(f"order must be one of {ORDERS}, got {order!r}")


@dataclass
class Unit:
    """One judgment to make."""

    pair: PreferencePair
    swapped: bool
    sample: int
    item_hash: str = ""


@dataclass
class RunResult:
    """What a run produced, including everything it could not judge (nothing is silently dropped)."""

    records: list[Record]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    pairs: int = 0
    planned: int = 0
    resumed: int = 0
    judged: int = 0
    elapsed_s: float = 0.0
    changed_items: int = 0  # cached judgments of items whose content changed since: re-judged
    reused_other_judge: int = 0  # cached judgments of another judge fingerprint reused (resume=force)

    @property
    def items_per_s(self) -> float:
        """Judgments made by this process per wall-clock second."""
        return self.judged / self.elapsed_s if self.elapsed_s > 0 else 0.0


class ItemsPerSecond(ProgressColumn):
    """Live judged-items/s (rich's speed estimate)."""

    def render(self, task: Task) -> Text:
        """e.g. `12.3 items/s`."""
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} items/s" if speed else "– items/s", style="progress.data.speed")


def make_progress(enabled: bool) -> Progress:
    """The bar: done/total, items/s, elapsed and ETA on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        ItemsPerSecond(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _record(judge: Judge, benchmark: str, unit: Unit, label: str, j: Any, judge_fp: str) -> Record:
    """A cache row for one finished judgment."""
    p = unit.pair
    return Record(
        judge=judge.name,
        benchmark=benchmark,
        item=p.id,
        order=order_of(unit.swapped),
        sample=unit.sample,
        task=p.task,
        subset=p.subset,
        group=p.group,
        label=label,
        verdict=j.verdict,
        format_ok=j.format_ok,
        score_a=j.score_a,
        score_b=j.score_b,
        text=j.text,
        latency_s=round(j.latency_s, 4),
        item_hash=unit.item_hash,
        judge_fp=judge_fp,
        vote=p.meta.get("vote"),
    )


def plan(
    pairs: Sequence[PreferencePair], judge: Judge, order: str, seed: int, samples: int
) -> tuple[list[Unit], list[dict[str, Any]]]:
    """All units to judge, and the pairs this judge cannot see (with the reason)."""
    units: list[Unit] = []
    skipped: list[dict[str, Any]] = []
    dups = [i for i, n in Counter(p.id for p in pairs).items() if n > 1]
    if dups:
        dup = dups[0]
        raise ValueError(f"pair id {dup!r} occurs more than once: ids key the cache and must be unique")
    for p in pairs:
        why = judge.check(p)
        if why:
            skipped.append({"item": p.id, "task": p.task, "subset": p.subset, "reason": why})
            continue
        h = item_hash(p)
        units += [Unit(p, s, k, h) for s in plan_swaps(p, order, seed) for k in range(samples)]
    return units, skipped


class _FirstN(logging.Filter):
    """Lets the first `n` records through and counts the rest (per-call judge warnings in an eval loop)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.seen = n, 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.seen += 1
        return self.seen <= self.n


@contextlib.contextmanager
def quiet_judge_warnings(n: int = 5) -> Iterator[_FirstN]:
    """An eval counts every failed judge call in its report; logging each one too floods stderr and costs time."""
    logger = logging.getLogger(JUDGE_WARNING_LOGGER)
    f = _FirstN(n)
    logger.addFilter(f)
    try:
        yield f
    finally:
        logger.removeFilter(f)
        if f.seen > n:
            logger.warning(
                "%d more judge-call warnings not shown (every failure is counted in the report)", f.seen - n
            )


def check_judge_unchanged(cache: ResultCache, keys: dict[Any, Unit], judge_fp: str, resume: str) -> int:
    """Cached judgments made under another fingerprint of this judge name: refuse unless resume=force."""
    if resume not in RESUME_MODES:
        raise ValueError(f"resume must be one of {RESUME_MODES}, got {resume!r}")
    other = Counter(
        r.judge_fp for k, u in keys.items() if (r := cache.get(k)) is not None and r.item_hash == u.item_hash
        and r.judge_fp != judge_fp
    )  # fmt: skip
    n = sum(other.values())
    if n and resume != "force":
        was = ", ".join(f"{fp or '(none recorded)'} ×{c}" for fp, c in other.items())
        raise JudgeChanged(
            f"{cache.path} holds {n} judgments by this judge name made with another fingerprint ({was}; now "
            f"{judge_fp}): the model, endpoint, sampling or weights changed. Use a new out_dir (or cache=) to "
            "judge afresh, or resume=force to reuse them knowingly"
        )
    return n


async def run_judge(
    pairs: Sequence[PreferencePair],
    judge: Judge,
    benchmark: str,
    cache: ResultCache,
    *,
    order: str = "random",
    seed: int = 0,
    samples: int = 1,
    concurrency: int = 8,
    max_errors: int = 20,
    progress: bool = True,
    judge_fp: str = "",
    resume: str = "auto",
) -> RunResult:
    """Judge every planned unit not already cached; returns all records of this (judge, benchmark)."""
    from omni_rl.judge.client import JudgeError

    t0 = time.monotonic()
    units, skipped = plan(pairs, judge, order, seed, samples)
    keys = {(judge.name, benchmark, u.pair.id, order_of(u.swapped), u.sample): u for u in units}
    result = RunResult(records=[], skipped=skipped, pairs=len(pairs), planned=len(units))
    result.reused_other_judge = check_judge_unchanged(cache, keys, judge_fp, resume)
    todo = [u for k, u in keys.items() if (r := cache.get(k)) is None or r.item_hash != u.item_hash]
    result.changed_items = sum(
        1 for k, u in keys.items() if (r := cache.get(k)) is not None and r.item_hash != u.item_hash
    )
    result.resumed = len(units) - len(todo)
    unsupported: set[str] = set()
    queue: asyncio.Queue[Unit] = asyncio.Queue()
    for u in todo:
        queue.put_nowait(u)

    async def worker(bar: Progress, task_id: Any) -> None:
        while not queue.empty():
            u = queue.get_nowait()
            op = u.pair.ordered(u.swapped)
            try:
                j = await judge.judge(op, u.sample)
            except Unsupported as exc:
                if u.pair.id not in unsupported:
                    unsupported.add(u.pair.id)
                    p = u.pair
                    skipped.append({"item": p.id, "task": p.task, "subset": p.subset, "reason": str(exc)})
            except JudgeError as exc:
                result.errors.append(
                    {"item": u.pair.id, "order": order_of(u.swapped), "sample": u.sample, "error": str(exc)}
                )
                if len(result.errors) > max_errors:
                    raise EvalAborted(
                        f"{len(result.errors)} judge requests failed (max_errors={max_errors}); last: {exc}. "
                        f"{result.judged} judgments are cached in {cache.path}: fix the endpoint and rerun to resume"
                    ) from exc
            else:
                cache.append(_record(judge, benchmark, u, op.label, j, judge_fp))
                result.judged += 1
            bar.advance(task_id)

    with make_progress(progress) as bar, quiet_judge_warnings():
        task_id = bar.add_task(f"judging {benchmark}", total=len(todo))
        workers = [asyncio.create_task(worker(bar, task_id)) for _ in range(max(1, concurrency))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    result.records = [
        r for k, u in keys.items()
        if (r := cache.get(k)) is not None and r.item_hash == u.item_hash and r.item not in unsupported
    ]  # fmt: skip
    result.elapsed_s = time.monotonic() - t0
    return result
