"""Claim: a cheap group scheme ranks a prompt group like full round-robin at a fraction of the judge calls.

For G in {4, 8, 16}, a synthetic judge with known noise judges what each scheme asks for:
P(first better) = sigmoid(q_first − q_second + bias + ε), latent qualities q ~ N(0, 1), a fixed position
bias toward the first slot, ε ~ N(0, σ) — drawn per call (`noise=call`, a sampling judge) or once per
ordered pair (`noise=pair`, a temperature-0 judge: asking the same ordered pair twice gives the same P).
A *soft* judge returns that P (the answer-token logprobs); a *hard* judge returns only its verdict
(1 if P > 0.5 else 0). Win-rate schemes judge both orders (2 calls per pair); `adaptive` judges single
orders and fits the bias. We count calls and report Kendall τ-b of each scheme's rewards against
round-robin's (same judge kind) and against the true qualities, averaged over trials.
Goal: ≤ 2G calls at τ ≥ 0.9 vs round-robin.

    .venv/bin/python benchmarks/bench_group_schemes.py [trials=300] [sigmas=[0.3]] [bias=0.5] [seed=0] \
        [noises=[call,pair]] [judges=[soft,hard]] [groups=[4,8,16]]
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sys
from dataclasses import asdict, dataclass

from omni_rl.judge.tournament import run_tournament
from omni_rl.utils.config import load_config

SCHEMES = ("round_robin", "anchor", "swiss", "adaptive")


@dataclass
class Args:
    trials: int = 300
    sigmas: list[float] | None = None  # judge noise (logit scale); default [0.3]
    bias: float = 0.5  # position bias toward the first slot (logit scale)
    seed: int = 0
    groups: list[int] | None = None  # default [4, 8, 16]
    noises: list[str] | None = None  # call | pair; default both
    judges: list[str] | None = None  # soft | hard; default both


def kendall_tau_b(x: list[float], y: list[float]) -> float:
    """Kendall τ-b (tie-corrected) between two score lists."""
    conc = disc = tx = ty = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif (dx > 0) == (dy > 0):
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    return (conc - disc) / denom if denom else 1.0


class SyntheticJudge:
    """A judge of known quality; counts calls. `ordered` is one call, `compare` both orders (2 calls)."""

    def __init__(self, q: list[float], sigma: float, bias: float, rng: random.Random, soft: bool, per_pair: dict | None) -> None:  # fmt: skip
        self.q, self.sigma, self.bias, self.rng, self.soft = q, sigma, bias, rng, soft
        self.per_pair, self.calls = per_pair, 0

    async def ordered(self, a: int, b: int) -> float:
        self.calls += 1
        if self.per_pair is None:
            eps = self.rng.gauss(0.0, self.sigma)
        else:
            eps = self.per_pair.setdefault((a, b), self.rng.gauss(0.0, self.sigma))
        p = 1.0 / (1.0 + math.exp(-(self.q[a] - self.q[b] + self.bias + eps)))
        return p if self.soft else float(p > 0.5)

    async def compare(self, i: int, j: int) -> float:
        return 0.5 * (await self.ordered(i, j) + (1.0 - await self.ordered(j, i)))


async def run(args: Args, sigma: float, noise: str, soft: bool) -> list[dict]:
    rng = random.Random(args.seed)
    rows = []
    for g in args.groups or [4, 8, 16]:
        calls = dict.fromkeys(SCHEMES, 0)
        tau_rr: dict[str, list[float]] = {s: [] for s in SCHEMES}
        tau_truth: dict[str, list[float]] = {s: [] for s in SCHEMES}
        for _ in range(args.trials):
            q = [rng.gauss(0.0, 1.0) for _ in range(g)]
            pair_noise: dict | None = (
                {} if noise == "pair" else None
            )  # one judge per group, shared by schemes
            ranks = {}
            for scheme in SCHEMES:
                judge = SyntheticJudge(q, sigma, args.bias, rng, soft, pair_noise)
                res = await run_tournament(g, scheme, judge.compare, rounds=2, ordered=judge.ordered)
                ranks[scheme] = res.win_rates
                calls[scheme] += judge.calls
                tau_truth[scheme].append(kendall_tau_b(res.win_rates, q))
            for scheme in SCHEMES:
                tau_rr[scheme].append(kendall_tau_b(ranks[scheme], ranks["round_robin"]))
        for scheme in SCHEMES:
            rows.append({
                "sigma": sigma, "noise": noise, "judge": "soft" if soft else "hard", "G": g, "scheme": scheme,
                "calls": calls[scheme] / args.trials, "budget_2G": 2 * g,
                "tau_vs_round_robin": sum(tau_rr[scheme]) / args.trials,
                "tau_vs_truth": sum(tau_truth[scheme]) / args.trials,
            })  # fmt: skip
    return rows


def print_table(rows: list[dict]) -> None:
    """Side by side: τ vs round-robin (and vs truth) per judge kind, one line per G × scheme."""
    kinds = sorted({r["judge"] for r in rows}, reverse=True)
    head = " | ".join(f"{k}: τ vs RR | {k}: τ vs truth" for k in kinds)
    print(f"| G | scheme | calls | ≤2G | {head} |")
    print("|---|---|---|---|" + "---|" * (2 * len(kinds)))
    for g in sorted({r["G"] for r in rows}):
        for scheme in SCHEMES:
            by = {r["judge"]: r for r in rows if r["G"] == g and r["scheme"] == scheme}
            any_row = next(iter(by.values()))
            ok = "yes" if any_row["calls"] <= any_row["budget_2G"] else "no"
            cells = " | ".join(
                f"{by[k]['tau_vs_round_robin']:.3f} | {by[k]['tau_vs_truth']:.3f}" for k in kinds
            )
            print(f"| {g} | {scheme} | {any_row['calls']:.0f} | {ok} | {cells} |")


def main(argv: list[str] | None = None) -> int:
    args = load_config(Args, list(sys.argv[1:] if argv is None else argv))
    all_rows = []
    for sigma in args.sigmas or [0.3]:
        for noise in args.noises or ["call", "pair"]:
            rows = []
            for kind in args.judges or ["soft", "hard"]:
                rows += asyncio.run(run(args, sigma, noise, kind == "soft"))
            all_rows += rows
            what = (
                "per call (sampling judge)" if noise == "call" else "per ordered pair (temperature-0 judge)"
            )
            print(f"\nsigma={sigma} noise {what}, bias={args.bias}, trials={args.trials}")
            print_table(rows)
    print(json.dumps({"args": asdict(args), "rows": all_rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
