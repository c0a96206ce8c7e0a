"""Selection logic against deterministic synthetic judges whose right pick is known."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omni_rl.rm.strategies import (
    CachedPairJudge,
    CachedPointJudge,
    Judgment,
    PointScore,
    combine_candidate_judgments,
    knockout,
    pointwise_max,
    round_robin,
    select,
)


class QualityJudge:
    """Prefers the higher hidden quality; equal quality is a tie; listed pairs fail to parse."""

    def __init__(self, quality, fail_pairs=(), position_bias=False, fail_points=()):
        self.quality = list(quality)
        self.fail_pairs = set(fail_pairs)
        self.fail_points = set(fail_points)
        self.position_bias = position_bias
        self.calls: list[tuple[int, int]] = []
        self.point_calls: list[int] = []

    async def judge(self, first: int, second: int) -> Judgment:
        self.calls.append((first, second))
        if (first, second) in self.fail_pairs:
            return Judgment(first, second, None, text="garbage", reason="no verdict")
        if self.position_bias:  # always says A: only swap-debiasing can cancel it
            return Judgment(first, second, "A")
        qa, qb = self.quality[first], self.quality[second]
        return Judgment(first, second, "A" if qa > qb else "B" if qb > qa else "tie")

    async def score(self, index: int) -> PointScore:
        self.point_calls.append(index)
        if index in self.fail_points:
            return PointScore(index, None, reason="no score")
        return PointScore(index, float(self.quality[index]))


QUALITIES = [[3, 7, 1, 5], [9, 2, 4, 8, 1, 0, 3, 6], [1, 2, 3, 4, 5], [5], [2, 8, 6]]


@pytest.mark.parametrize("quality", QUALITIES)
@pytest.mark.parametrize("strategy", ["pointwise", "knockout", "round_robin"])
async def test_picks_the_best_with_distinct_qualities(quality, strategy):
    judge = QualityJudge(quality)
    sel = await select(strategy, len(quality), pair_judge=judge, point_judge=judge)
    assert sel.pick == quality.index(max(quality))
    assert not sel.fallback and sel.failures == 0 and sel.ties == 0


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 16])
@pytest.mark.parametrize("debias", [False, True])
async def test_knockout_uses_exactly_n_minus_1_comparisons(n, debias):
    judge = QualityJudge(list(range(n)))
    sel = await knockout(judge, n, debias=debias)
    assert len(sel.comparisons) == n - 1
    assert len(judge.calls) == sel.judge_calls == (n - 1) * (2 if debias else 1)
    assert sel.pick == n - 1
    if debias:  # both orders of every compared pair
        assert {frozenset(c) for c in judge.calls} == {frozenset((c.a, c.b)) for c in sel.comparisons}


async def test_round_robin_judges_every_pair_in_both_orders():
    judge = QualityJudge([4, 1, 3, 2])
    sel = await round_robin(judge, 4, debias=True)
    assert sorted(judge.calls) == sorted(itertools.permutations(range(4), 2))
    assert sel.wins == [3.0, 0.0, 2.0, 1.0]


async def test_ties_keep_the_lower_index_and_are_counted():
    judge = QualityJudge([5, 5, 5, 5])
    for strategy in ("pointwise", "knockout", "round_robin"):
        sel = await select(strategy, 4, pair_judge=judge, point_judge=judge)
        assert sel.pick == 0 and not sel.fallback
        assert sel.ties == 3 if strategy != "round_robin" else sel.ties == 6
    sel = await knockout(QualityJudge([1, 6, 6, 2]), 4)
    assert sel.pick == 1 and sel.ties == 1  # final 1 vs 2 is a tie: the incumbent (lower index) stays


async def test_swap_debias_cancels_position_bias():
    biased = QualityJudge([1, 9, 2, 3], position_bias=True)
    sel = await knockout(biased, 4, debias=True)
    assert all(c.p_a == 0.5 for c in sel.comparisons)  # "A" both ways is a tie, not a win for A
    assert sel.ties == 3 and sel.pick == 0
    plain = await knockout(QualityJudge([1, 9, 2, 3], position_bias=True), 4, debias=False)
    assert plain.ties == 0 and plain.pick == 0  # undebiased, A always "wins": the bias decides


async def test_parse_failures_are_counted_and_never_guessed():
    # One order of 0-vs-1 fails: the other order alone decides (1 is better).
    judge = QualityJudge([1, 9, 2, 3], fail_pairs={(0, 1)})
    sel = await knockout(judge, 4)
    first = sel.comparisons[0]
    assert (first.a, first.b, first.p_a) == (0, 1, 0.0)
    assert sel.pick == 1 and sel.failures == 0
    # Both orders fail: the comparison is "failed", the incumbent stays, the failure is counted.
    judge = QualityJudge([1, 9, 2, 3], fail_pairs={(0, 1), (1, 0)})
    sel = await knockout(judge, 4)
    assert sel.comparisons[0].outcome == "failed" and sel.failures == 1
    assert sel.pick == 3 and not sel.fallback  # 0 advanced, lost to the 2-vs-3 winner


async def test_everything_failing_falls_back_to_candidate_0_and_says_so():
    n = 4
    pairs = set(itertools.permutations(range(n), 2))
    judge = QualityJudge([1, 9, 2, 3], fail_pairs=pairs, fail_points=set(range(n)))
    for strategy in ("pointwise", "knockout", "round_robin"):
        sel = await select(strategy, n, pair_judge=judge, point_judge=judge)
        assert sel.pick == 0 and sel.fallback, strategy
        assert sel.failures == (n if strategy == "pointwise" else len(sel.comparisons))


async def test_pointwise_skips_unparsed_scores():
    judge = QualityJudge([1, 9, 2, 3], fail_points={1})
    sel = await pointwise_max(judge, 4)
    assert sel.pick == 3 and sel.failures == 1 and sel.scores == [1.0, None, 2.0, 3.0]


async def test_round_robin_failure_counts_as_half_a_win_each():
    judge = QualityJudge([2, 2, 1], fail_pairs={(0, 1), (1, 0)})
    sel = await round_robin(judge, 3)
    assert sel.wins == [1.5, 1.5, 0.0] and sel.failures == 1 and sel.pick == 0


def test_combine_maps_swapped_judgments_back_to_a():
    j = [Judgment(2, 5, "B"), Judgment(5, 2, "tie")]
    assert combine_candidate_judgments(2, 5, j).p_a == pytest.approx(0.25)
    assert combine_candidate_judgments(2, 5, [Judgment(2, 5, None)]).p_a is None


async def test_cached_judges_reuse_calls_across_an_n_sweep():
    raw = QualityJudge([3, 1, 4, 1, 5, 9, 2, 6])
    cached, points = CachedPairJudge(raw), CachedPointJudge(raw)
    for n in (1, 2, 4, 8):
        await knockout(cached, n)
        await pointwise_max(points, n)
    # The 8-bracket contains the 4- and 2-brackets: 7 comparisons x 2 orders in all.
    assert cached.calls == len(raw.calls) == 14
    assert points.calls == len(raw.point_calls) == 8


async def test_unknown_strategy_and_missing_judge_are_clear_errors():
    with pytest.raises(ValueError, match="unknown strategy 'best'"):
        await select("best", 2, pair_judge=QualityJudge([1, 2]))
    with pytest.raises(ValueError, match="needs a point_judge"):
        await select("pointwise", 2, pair_judge=QualityJudge([1, 2]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=12, unique=True), st.booleans())
def test_property_a_consistent_judge_always_finds_the_maximum(quality, debias):
    import asyncio

    for strategy in ("knockout", "round_robin", "pointwise"):
        judge = QualityJudge(quality)
        sel = asyncio.run(select(strategy, len(quality), judge, judge, debias=debias))
        assert sel.pick == quality.index(max(quality))
        if strategy == "knockout":
            assert len(sel.comparisons) == len(quality) - 1
