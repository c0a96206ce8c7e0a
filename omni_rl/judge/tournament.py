"""Within-group pairwise schedules (Pref-GRPO win rates) and how many judge calls each costs.

- `round_robin`: all C(G,2) pairs, both orders; reward = mean P(win) over the G-1 opponents (Pref-GRPO).
- `anchor`: every response vs one shared anchor (the group's first response): G-1 pairs; reward =
  P(beat the anchor), the anchor itself 0.5. Monotone in the same latent quality as round-robin.
- `swiss`: R rounds; each round pairs neighbours in the current standings (no repeats): ≤ R·G/2 pairs.
- `adaptive`: 2G *single-order* calls on soft margins. Round one judges a ring (each member first once,
  second once); later rounds judge neighbours in the current estimate, reversing the order of a pair
  already seen. Each soft P(first better) becomes a logit margin, and a least-squares fit of
  `logit P = q_first − q_second + position_bias` gives qualities and the judge's position bias at once
  (so single orders need no swap). Reward = the round-robin win rate those qualities predict,
  mean_j σ(q_i − q_j). It needs soft verdicts (answer-token logprobs); with hard A/B verdicts the
  margins are ±7 and `anchor` ranks as well (benchmarks/bench_group_schemes.py).

An unusable comparison (no verdict, or a neutral-mode judge failure) counts 0.5 for both sides in the
win-rate schemes, as in Pref-GRPO, and is dropped from the `adaptive` fit; either way it is counted in
`unusable` and reported by the caller, never silently dropped.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

Compare = Callable[[int, int], Awaitable[float | None]]  # P(i beats j), both orders; None when unusable
Ordered = Callable[[int, int], Awaitable[float | None]]  # P(first beats second) from ONE ordered call
SCHEMES = ("round_robin", "anchor", "swiss", "adaptive")
_CLIP = 1e-3  # margins are clipped to ±logit(1 − 1e-3) ≈ ±6.9 (R1-Reward's pre-clip)


@dataclass
class TournamentResult:
    """Per-member win rates plus the bookkeeping the metrics need."""

    win_rates: list[float]
    pairs: list[tuple[int, int]] = field(default_factory=list)  # ordered calls for `adaptive`
    unusable: int = 0
    position_bias: float = 0.0  # `adaptive` only: the fitted logit bias toward the first slot


def round_robin(n: int) -> list[tuple[int, int]]:
    """All unordered pairs (i < j)."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def anchor_pairs(n: int, anchor: int = 0) -> list[tuple[int, int]]:
    """Every member vs the anchor."""
    return [(i, anchor) for i in range(n) if i != anchor]


def pairs_per_scheme(scheme: str, n: int, rounds: int = 2) -> int:
    """Judge *pairs* a scheme uses for a group of n (×2 calls when swap-debiased; `adaptive`: calls)."""
    if scheme == "round_robin":
        return n * (n - 1) // 2
    if scheme == "anchor":
        return max(0, n - 1)
    if scheme == "swiss":  # an upper bound: a round skips pairs that already met
        return min(rounds * (n // 2), n * (n - 1) // 2)
    if scheme == "adaptive":  # single-order calls, not pairs: ≤ 2n, and at most both orders of every pair
        return min(2 * n, n * (n - 1)) if n >= 2 else 0
    raise ValueError(f"unknown group scheme {scheme!r}; choose one of {SCHEMES}")


def calls_per_scheme(scheme: str, n: int, rounds: int = 2, swap: bool = True) -> int:
    """Judge *calls* a scheme makes for a group of n."""
    k = pairs_per_scheme(scheme, n, rounds)
    return k if scheme == "adaptive" else k * (2 if swap else 1)


def _win_rates(
    n: int, results: dict[tuple[int, int], float], fixed: dict[int, float] | None = None
) -> list[float]:
    """Mean P(win) per member over the pairs it played; members with no game get 0.5."""
    total = [0.0] * n
    games = [0] * n
    for (i, j), p in results.items():
        total[i] += p
        total[j] += 1.0 - p
        games[i] += 1
        games[j] += 1
    rates = [total[k] / games[k] if games[k] else 0.5 for k in range(n)]
    for k, v in (fixed or {}).items():
        rates[k] = v
    return rates


async def _play(pairs: list[tuple[int, int]], compare: Compare) -> tuple[dict[tuple[int, int], float], int]:
    """Judge all pairs concurrently; unusable ones count 0.5."""
    ps = await asyncio.gather(*(compare(i, j) for i, j in pairs))
    unusable = sum(p is None for p in ps)
    return {pair: (0.5 if p is None else float(p)) for pair, p in zip(pairs, ps, strict=True)}, unusable


def _swiss_round(n: int, scores: list[float], played: set[frozenset[int]]) -> list[tuple[int, int]]:
    """Pair neighbours in the standings, skipping pairs that already met when possible."""
    order = sorted(range(n), key=lambda k: (-scores[k], k))
    pairs: list[tuple[int, int]] = []
    free = list(order)
    while len(free) >= 2:
        i = free.pop(0)
        j = next((c for c in free if frozenset((i, c)) not in played), None)
        if j is None:  # everyone left already met i: i sits this round out (no pair is judged twice)
            continue
        free.remove(j)
        pairs.append((i, j))
    return pairs


# -- adaptive: soft margins, least squares, single-order calls ----------------------------------------
def margin(p: float) -> float:
    """logit(P), clipped: the soft verdict as a quality difference on the logit scale."""
    p = min(max(p, _CLIP), 1.0 - _CLIP)
    return math.log(p / (1.0 - p))


def fit_margins(n: int, calls: dict[tuple[int, int], list[float]]) -> tuple[np.ndarray, float]:
    """Least-squares qualities q (sum 0) and position bias b from logit P(first) = q_a − q_b + b."""
    rows = [(a, b, margin(p)) for (a, b), ps in calls.items() for p in ps]
    mat = np.zeros((len(rows) + 1, n + 1))
    y = np.zeros(len(rows) + 1)
    for k, (a, b, m) in enumerate(rows):
        mat[k, a], mat[k, b], mat[k, n], y[k] = 1.0, -1.0, 1.0, m
    mat[-1, :n] = 1.0  # gauge: qualities sum to 0
    sol = np.linalg.lstsq(mat, y, rcond=None)[0]
    return sol[:n], float(sol[n])


def predicted_win_rates(q: np.ndarray) -> list[float]:
    """The round-robin win rate the fitted qualities predict: mean_j σ(q_i − q_j)."""
    n = len(q)
    diff = q[:, None] - q[None, :]
    p = 1.0 / (1.0 + np.exp(-diff))
    return [float((p[i].sum() - 0.5) / (n - 1)) for i in range(n)]


def _next_round(
    n: int, q: np.ndarray, calls: dict[tuple[int, int], list[float]], room: int
) -> list[tuple[int, int]]:
    """Neighbours in the current estimate (rank distance 1, then 2), least-judged first; reverse seen pairs."""
    order = sorted(range(n), key=lambda k: (-q[k], k))
    seen: dict[frozenset[int], int] = {}
    for a, b in calls:
        seen[frozenset((a, b))] = seen.get(frozenset((a, b)), 0) + len(calls[(a, b)])
    cands = [
        (
            seen.get(frozenset((order[k], order[k + d])), 0),
            d,
            abs(q[order[k]] - q[order[k + d]]),
            order[k],
            order[k + d],
        )
        for d in (1, 2)
        for k in range(n - d)
    ]
    cands.sort(key=lambda c: c[:3])
    out: list[tuple[int, int]] = []
    for _, _, _, a, b in cands[: max(1, min(room, n // 2))]:
        if (a, b) in calls and (b, a) not in calls:
            a, b = b, a  # the other order of a pair already seen: it also cancels position bias
        elif (a, b) not in calls and (b, a) not in calls and len(out) % 2:
            a, b = b, a  # new pairs alternate orientation
        out.append((a, b))
    return out


async def adaptive(n: int, ordered: Ordered, budget: int | None = None) -> TournamentResult:
    """The `adaptive` scheme: ≤ budget (default 2n) single-order calls, fitted on soft margins."""
    budget = pairs_per_scheme("adaptive", n) if budget is None else budget
    calls: dict[tuple[int, int], list[float]] = {}
    made: list[tuple[int, int]] = []
    unusable = 0
    batch = [(k, (k + 1) % n) for k in range(n)] if n > 2 else [(0, 1)]
    q = np.zeros(n)
    while batch:
        ps = await asyncio.gather(*(ordered(a, b) for a, b in batch))
        for (a, b), p in zip(batch, ps, strict=True):
            made.append((a, b))
            if p is None:
                unusable += 1
            else:
                calls.setdefault((a, b), []).append(float(p))
        if calls:
            q, bias = fit_margins(n, calls)
        room = budget - len(made)
        batch = _next_round(n, q, calls, room) if room > 0 else []
    rates = predicted_win_rates(q) if calls else [0.5] * n
    return TournamentResult(rates, made, unusable, position_bias=bias if calls else 0.0)


async def run_tournament(
    n: int, scheme: str, compare: Compare, rounds: int = 2, ordered: Ordered | None = None
) -> TournamentResult:
    """Play `scheme` over n members and return their win rates (`adaptive` needs `ordered`)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown group scheme {scheme!r}; choose one of {SCHEMES}")
    if n < 2:
        return TournamentResult(win_rates=[0.5] * n)
    if scheme == "round_robin":
        pairs = round_robin(n)
        results, bad = await _play(pairs, compare)
        return TournamentResult(_win_rates(n, results), pairs, bad)
    if scheme == "anchor":
        pairs = anchor_pairs(n)
        results, bad = await _play(pairs, compare)
        rates = [results[(i, 0)] if i else 0.5 for i in range(n)]
        return TournamentResult(rates, pairs, bad)
    if scheme == "adaptive":
        if ordered is None:
            raise ValueError("the adaptive scheme judges single orders: pass ordered=P(first beats second)")
        return await adaptive(n, ordered)
    # swiss. round 1: fixed fold pairing (i vs i + n/2); later rounds: neighbours in the standings
    all_results: dict[tuple[int, int], float] = {}
    played: set[frozenset[int]] = set()
    bad = 0
    pairs = [(i, i + n // 2) for i in range(n // 2)]
    for r in range(rounds):
        if r:
            pairs = _swiss_round(n, _win_rates(n, all_results), played)
        results, b = await _play(pairs, compare)
        all_results.update(results)
        played.update(frozenset(p) for p in pairs)
        bad += b
    return TournamentResult(_win_rates(n, all_results), list(all_results), bad)
