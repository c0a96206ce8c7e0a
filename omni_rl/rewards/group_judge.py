"""Judging one prompt group for the Pref-GRPO reward: the tournament through the policy judge.

The schedule (which pairs, in which order, and how verdicts become win rates) is the judge layer's
`omni_rl.judge.tournament`; this module only turns each scheduled comparison into a pipeline call
and the tournament's win rates into verl reward dicts. A judge *failure* (on_failure=neutral) gives the
whole group the neutral reward (equal rewards = no GRPO signal), flagged `judge_failed=1`; a pair
without a verdict counts 0.5 (`group_unusable`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from omni_rl.data.schema import Response
from omni_rl.judge.budget import FailureBudgetExceeded
from omni_rl.judge.client import JudgeError
from omni_rl.judge.tournament import run_tournament
from omni_rl.rewards.group_setup import GroupConfig
from omni_rl.rewards.policy import METRIC_KEYS, PolicyComparison, sample_result

log = logging.getLogger(__name__)
GROUP_KEYS = (
    "group_win_rate",
    "group_size",
    "group_pairs",
    "group_unusable",
    "group_late",
    "group_pointwise",
    "group_position_bias",
)
_MEAN_KEYS = ("choice_mass",)  # averaged over the group's calls, not summed


class GroupJudge:
    """Ranks the responses of one prompt group with the GenRM (the leader's context: same prompt, media)."""

    def __init__(self, scorer: Any, ctx: Any, cfg: GroupConfig) -> None:
        if scorer.judge is None:
            raise ValueError(
                "group win-rate needs a GenRM endpoint (reward_kwargs.base_url or the reward router)"
            )
        self.judge, self.ctx, self.cfg = scorer.judge, ctx, cfg
        self.stats = dict.fromkeys(METRIC_KEYS, 0.0)
        self._pairs_seen = 0

    def _count(self, out: PolicyComparison) -> float | None:
        if out.failed:
            self.judge.account(failed=True, parse_failed=False, disagree=False)
        self._pairs_seen += 1
        values = {"judge_calls": out.calls, "parse_failed": out.parse_failures, "swap_disagree": out.disagree,
                  "judge_failed": out.failed, "soft_verdict": out.soft, "choice_mass": getattr(out, "mass", 0.0)}  # fmt: skip
        for k in METRIC_KEYS:
            self.stats[k] += float(values.get(k, 0.0))
        return None if out.failed else out.p_x

    async def both(self, responses: list[str], i: int, j: int) -> float | None:
        """P(i beats j) as the reward config judges a pair (both orders when swap is on)."""
        out = await self.judge.compare(
            self.ctx, Response(responses[i]), Response(responses[j]), order_key=f"{i}:{j}"
        )
        return self._count(out)

    async def ordered(self, responses: list[str], i: int, j: int) -> float | None:
        """P(i beats j) from ONE call with i shown first (the adaptive scheme fits the position bias)."""
        try:
            c = await self.judge.pipeline.compare(
                self.ctx, Response(responses[i]), Response(responses[j]), swap=False, x_first=True
            )
        except Exception as exc:
            if isinstance(exc, FailureBudgetExceeded) or not isinstance(exc, JudgeError):
                raise
            if self.judge.cfg.on_failure == "raise":
                raise
            return self._count(PolicyComparison(p_x=None, calls=1, failed=True, error=str(exc)))
        return self._count(PolicyComparison.of(c))

    def _per_member(self, n: int) -> tuple[dict[str, float], bool]:
        """Group totals spread evenly over the members (batch sums stay exact); means stay means."""
        per = {k: (v / max(1, self._pairs_seen) if k in _MEAN_KEYS else v / n) for k, v in self.stats.items()}
        failed = self.stats["judge_failed"] > 0
        per["judge_failed"] = float(failed)
        return per, failed

    async def rank(self, responses: list[str]) -> list[dict[str, float]]:
        """Run the tournament and build one reward dict per member (complete_keys is the caller's)."""
        n = len(responses)
        res = await run_tournament(
            n,
            self.cfg.scheme,
            lambda i, j: self.both(responses, i, j),
            self.cfg.rounds,
            ordered=lambda i, j: self.ordered(responses, i, j),
        )
        per, failed = self._per_member(n)
        if failed:  # a server error never shapes a reward: the whole group gets the neutral reward
            log.warning(
                "group judging: %d pair(s) failed; the group gets the neutral reward",
                int(self.stats["judge_failed"]),
            )
        neutral = self.judge.cfg.neutral_reward
        out = []
        for wr in res.win_rates:
            r = sample_result(neutral if failed else wr, **per)
            r.update(group_win_rate=wr, group_size=n, group_pairs=len(res.pairs), group_unusable=res.unusable,
                     group_position_bias=res.position_bias)  # fmt: skip
            out.append(r)
        return out

    async def late(self, response: str, members: list[str]) -> dict[str, float]:
        """A member that found its group closed (a padding copy took its slot): judged vs every member."""
        log.warning("late group member: judged against the closed group (see omni_rl.rewards.groups)")
        everyone = [response, *members]
        ps = await asyncio.gather(*(self.both(everyone, 0, j) for j in range(1, len(everyone))))
        per, failed = self._per_member(1)
        wr = self.judge.cfg.neutral_reward if failed else sum(0.5 if p is None else p for p in ps) / len(ps)
        r = sample_result(wr, **per)
        r.update(group_win_rate=wr, group_size=len(members), group_pairs=len(ps),
                 group_unusable=sum(p is None for p in ps), group_late=1)  # fmt: skip
        return r
