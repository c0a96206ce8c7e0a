"""Position-bias control: the ONE swap-combiner (both orders → P(x better)), used by every caller.

The policy reward, best-of-N, the Python API and group judging all reach this through
`omni_rl.judge.pipeline`, so the same GenRM gives the same P(better) everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Side = Literal["A", "B", "tie"]


@dataclass(frozen=True)
class OrderedJudgement:
    """One judge call on one order: P(first-listed item better) and the hard verdict (None = unparsed)."""

    p_first: float | None  # probability that the item shown as A is better
    verdict: Side | None


@dataclass(frozen=True)
class Debiased:
    """P(x better than y) from both orders, whether the hard verdicts disagreed, and how many were usable."""

    p_x: float | None
    disagree: bool
    n_valid: int


def _winner(j: OrderedJudgement, x_is_a: bool) -> str | None:
    """Which item (x|y|tie) a hard verdict picked, given whether x was shown as A."""
    if j.verdict is None:
        return None
    if j.verdict == "tie":
        return "tie"
    return "x" if (j.verdict == "A") == x_is_a else "y"


def combine_orders(items: Sequence[tuple[OrderedJudgement, bool]]) -> Debiased:
    """Mean P(x better) over judgements given as (judgement, x_is_a); unusable ones are left out, not guessed."""
    ps = [j.p_first if x_is_a else 1.0 - j.p_first for j, x_is_a in items if j.p_first is not None]
    winners = {w for j, x_is_a in items if (w := _winner(j, x_is_a)) is not None}
    return Debiased(p_x=sum(ps) / len(ps) if ps else None, disagree=len(winners) > 1, n_valid=len(ps))


def combine_swapped(xy: OrderedJudgement, yx: OrderedJudgement) -> Debiased:
    """Average P(x better) over the (x, y) and (y, x) orders."""
    return combine_orders([(xy, True), (yx, False)])


def single_order(j: OrderedJudgement, x_is_a: bool) -> Debiased:
    """P(x better) from one order only (swap disabled)."""
    return combine_orders([(j, x_is_a)])
