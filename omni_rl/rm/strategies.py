"""Best-of-N selection strategies over an abstract async judge, so the logic is testable without a server.

A strategy sees candidates only as indices 0..N-1. It asks a `PairJudge` for one ordered judgment
(candidate `first` shown as A, `second` as B) or a `PointJudge` for one score, and returns a
`Selection` that records every judgment it used. Rules, fixed here and documented once:

- A comparison's P(a better) is the mean over its judgments of P(first better), mapped back to `a`
  (the soft P(A)+½P(tie) from the judge pipeline, else A=1, B=0, tie=0.5), combined by the one
  swap-combiner `omni_rl.judge.debias.combine_orders`; swap-debiased comparisons judge both orders. A judgment whose verdict could
  not be parsed contributes nothing; a comparison with no parsed judgment has `p_a=None`.
- Ties and failures never pick at random: the lower index (the incumbent) wins, and both are counted.
- If every judgment of a prompt failed, the pick falls back to candidate 0 and `fallback=True`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from omni_rl.judge.debias import OrderedJudgement, combine_orders
from omni_rl.judge.tournament import round_robin as round_robin_pairs

Verdict = Literal["A", "B", "tie"]
STRATEGIES: tuple[str, ...] = ("pointwise", "knockout", "round_robin")
_VERDICT_P: dict[str, float] = {"A": 1.0, "B": 0.0, "tie": 0.5}


@dataclass
class Judgment:
    """One judge call on an ordered pair: `first` was shown as A, `second` as B."""

    first: int
    second: int
    verdict: Verdict | None
    text: str = ""
    reason: str = ""
    p: float | None = None  # graded P(first better) when the RM gives one (soft GenRM verdict, scalar RMs)

    @property
    def p_first(self) -> float | None:
        """P(first better): the graded value if any, else implied by the verdict (None when unparsed)."""
        if self.verdict is None:
            return None
        return self.p if self.p is not None else _VERDICT_P[self.verdict]


@dataclass
class PointScore:
    """One pointwise judge call: a scalar score for one candidate (None when unparsed)."""

    index: int
    score: float | None
    text: str = ""
    reason: str = ""


class PairJudge(Protocol):
    """Anything that can judge candidate `first` (as A) against `second` (as B)."""

    async def judge(self, first: int, second: int) -> Judgment: ...


class PointJudge(Protocol):
    """Anything that can score one candidate."""

    async def score(self, index: int) -> PointScore: ...


@dataclass
class CandidateComparison:
    """A (possibly swap-debiased) comparison of a vs b and the judgments behind it."""

    a: int
    b: int
    p_a: float | None
    judgments: list[Judgment]

    @property
    def outcome(self) -> Literal["a", "b", "tie", "failed"]:
        """Who won, with ties and parse failures named rather than guessed."""
        if self.p_a is None:
            return "failed"
        return "a" if self.p_a > 0.5 else "b" if self.p_a < 0.5 else "tie"


@dataclass
class Selection:
    """The pick of one strategy at one N, with everything it was based on."""

    strategy: str
    n: int
    pick: int
    fallback: bool = False
    comparisons: list[CandidateComparison] = field(default_factory=list)
    scores: list[float | None] | None = None
    wins: list[float] | None = None
    ties: int = 0
    failures: int = 0

    @property
    def judge_calls(self) -> int:
        """Judge calls this selection used (pointwise: one per candidate)."""
        if self.scores is not None:
            return len(self.scores)
        return sum(len(c.judgments) for c in self.comparisons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (comparisons flattened to a/b/p_a/outcome/verdicts)."""
        d = {k: v for k, v in asdict(self).items() if k != "comparisons"}
        d["num_comparisons"] = len(self.comparisons)
        d["judge_calls"] = self.judge_calls
        d["comparisons"] = [
            {
                "a": c.a,
                "b": c.b,
                "p_a": c.p_a,
                "outcome": c.outcome,
                "verdicts": [[j.first, j.second, j.verdict] for j in c.judgments],
            }
            for c in self.comparisons
        ]
        return d


def combine_candidate_judgments(a: int, b: int, judgments: Sequence[Judgment]) -> CandidateComparison:
    """Average P(a better) over the parsed judgments, whatever order each was shown in (the one combiner)."""
    deb = combine_orders([(OrderedJudgement(j.p_first, j.verdict), j.first == a) for j in judgments])
    return CandidateComparison(a=a, b=b, p_a=deb.p_x, judgments=list(judgments))


async def compare(judge: PairJudge, a: int, b: int, debias: bool = True) -> CandidateComparison:
    """Judge a vs b once, or in both orders concurrently when `debias` (2 calls)."""
    calls = [judge.judge(a, b)] + ([judge.judge(b, a)] if debias else [])
    return combine_candidate_judgments(a, b, await asyncio.gather(*calls))


def _argmax_lowest(values: Sequence[float | None]) -> int | None:
    """Index of the largest non-None value; ties go to the lowest index; None if all are None."""
    best: int | None = None
    for i, v in enumerate(values):
        if v is not None and (best is None or v > values[best]):  # type: ignore[operator]
            best = i
    return best


async def pointwise_max(judge: PointJudge, n: int) -> Selection:
    """Score every candidate once; pick the highest score (N calls)."""
    results = await asyncio.gather(*(judge.score(i) for i in range(n)))
    scores = [r.score for r in results]
    best = _argmax_lowest(scores)
    top = max((s for s in scores if s is not None), default=None)
    ties = sum(1 for s in scores if s is not None and s == top) - 1 if top is not None else 0
    return Selection(
        strategy="pointwise",
        n=n,
        pick=0 if best is None else best,
        fallback=best is None,
        scores=scores,
        ties=max(ties, 0),
        failures=sum(1 for s in scores if s is None),
    )


async def knockout(judge: PairJudge, n: int, debias: bool = True) -> Selection:
    """Single-elimination bracket in index order: exactly N-1 comparisons; an odd one out gets a bye."""
    alive = list(range(n))
    comparisons: list[CandidateComparison] = []
    while len(alive) > 1:
        pairs = [(alive[i], alive[i + 1]) for i in range(0, len(alive) - 1, 2)]
        bye = [alive[-1]] if len(alive) % 2 else []
        round_ = await asyncio.gather(*(compare(judge, a, b, debias) for a, b in pairs))
        comparisons += round_
        alive = [c.b if c.outcome == "b" else c.a for c in round_] + bye
    failed = sum(c.outcome == "failed" for c in comparisons)
    return Selection(
        strategy="knockout",
        n=n,
        pick=alive[0],
        fallback=bool(comparisons) and failed == len(comparisons),
        comparisons=comparisons,
        ties=sum(c.outcome == "tie" for c in comparisons),
        failures=failed,
    )


async def round_robin(judge: PairJudge, n: int, debias: bool = True) -> Selection:
    """Every pair once (N(N-1)/2 comparisons); most wins (a tie or failure is half a win each) picks."""
    pairs = round_robin_pairs(n)  # the judge layer's one round-robin schedule (also used for group rewards)
    comparisons = list(await asyncio.gather(*(compare(judge, a, b, debias) for a, b in pairs)))
    wins = [0.0] * n
    for c in comparisons:
        p = 0.5 if c.p_a is None else c.p_a
        wins[c.a] += p
        wins[c.b] += 1.0 - p
    failed = sum(c.outcome == "failed" for c in comparisons)
    best = _argmax_lowest(wins)
    return Selection(
        strategy="round_robin",
        n=n,
        pick=0 if best is None else best,
        fallback=bool(comparisons) and failed == len(comparisons),
        comparisons=comparisons,
        wins=wins,
        ties=sum(c.outcome == "tie" for c in comparisons),
        failures=failed,
    )


class CachedPairJudge:
    """Memoise ordered judgments so an N sweep (1, 2, 4, 8) reuses the calls of larger brackets."""

    def __init__(self, judge: PairJudge) -> None:
        self._judge = judge
        self._tasks: dict[tuple[int, int], asyncio.Task[Judgment]] = {}

    async def judge(self, first: int, second: int) -> Judgment:
        """The cached judgment of (first, second), calling the judge once per ordered pair."""
        key = (first, second)
        if key not in self._tasks:
            self._tasks[key] = asyncio.ensure_future(self._judge.judge(first, second))
        return await self._tasks[key]

    @property
    def calls(self) -> int:
        """Distinct judge calls made so far."""
        return len(self._tasks)

    async def results(self) -> list[Judgment]:
        """Every judgment made so far, in call order."""
        return list(await asyncio.gather(*self._tasks.values()))

    def cancel(self) -> None:
        """Cancel calls still in flight (a failed prompt must not leave judge calls running)."""
        for t in self._tasks.values():
            t.cancel()


class CachedPointJudge:
    """Memoise pointwise scores across an N sweep."""

    def __init__(self, judge: PointJudge) -> None:
        self._judge = judge
        self._tasks: dict[int, asyncio.Task[PointScore]] = {}

    async def score(self, index: int) -> PointScore:
        """The cached score of candidate `index`."""
        if index not in self._tasks:
            self._tasks[index] = asyncio.ensure_future(self._judge.score(index))
        return await self._tasks[index]

    @property
    def calls(self) -> int:
        """Distinct judge calls made so far."""
        return len(self._tasks)

    async def results(self) -> list[PointScore]:
        """Every score made so far, in call order."""
        return list(await asyncio.gather(*self._tasks.values()))

    def cancel(self) -> None:
        """Cancel calls still in flight."""
        for t in self._tasks.values():
            t.cancel()


async def select(
    strategy: str,
    n: int,
    pair_judge: PairJudge | None = None,
    point_judge: PointJudge | None = None,
    debias: bool = True,
) -> Selection:
    """Dispatch by strategy name (one of STRATEGIES), checking the needed judge was given."""
    if n < 1:
        raise ValueError(f"best-of-N needs n >= 1, got {n}")
    runners: dict[str, Callable[[], Awaitable[Selection]]] = {
        "pointwise": lambda: pointwise_max(_need(point_judge, strategy), n),
        "knockout": lambda: knockout(_need(pair_judge, strategy), n, debias),
        "round_robin": lambda: round_robin(_need(pair_judge, strategy), n, debias),
    }
    if strategy not in runners:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    return await runners[strategy]()


def _need(judge: Any, strategy: str) -> Any:
    """The judge a strategy needs, or a clear error naming it."""
    if judge is None:
        kind = "point_judge (a pointwise scorer)" if strategy == "pointwise" else "pair_judge"
        raise ValueError(f"strategy {strategy!r} needs a {kind}")
    return judge
