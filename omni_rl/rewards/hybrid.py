"""Rule + model reward per data_source: verifiable samples are settled by rules without waiting on the judge.

Per data_source (fnmatch patterns, first match wins, then "default"):
    score = w_rule·rule + w_model·judge + w_format·format + w_length·length_penalty
When the rule is decisive (its status is in `decisive_on`, e.g. the math answer was checked), the
judge is not called and its term is 0 (`judge_skipped=1`). Every sample returns the same keys.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field, fields
from typing import Any

from omni_rl.data.schema import Response
from omni_rl.rewards import rules
from omni_rl.rewards.policy import METRIC_KEYS, JudgeContext, PolicyJudge, sample_result

log = logging.getLogger(__name__)
HYBRID_KEYS = ("rule_score", "model_score", "judge_skipped", "rule_timeout", "format_score", "length_penalty")


@dataclass
class SourceRule:
    """How one data_source is rewarded."""

    rule: str = "none"  # none | math | mcq
    w_rule: float = 1.0
    w_model: float = 1.0
    decisive_on: list[str] = field(default_factory=lambda: ["correct", "incorrect"])
    format_regex: str | None = None
    w_format: float = 0.0
    max_chars: int | None = None
    length_buffer_chars: int = 1024
    w_length: float = 0.0
    rule_timeout_s: float = 10.0

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> SourceRule:
        """Validate one `sources` entry, naming it in the error."""
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"reward_kwargs.sources[{name!r}]: unknown keys {bad}; valid: {sorted(known)}")
        out = cls(**d)
        if out.rule not in ("none", *rules.RULES):
            raise ValueError(
                f"reward_kwargs.sources[{name!r}].rule must be none|{'|'.join(rules.RULES)}, got {out.rule!r}"
            )
        return out


#: Judge-only unless a data_source matches a rule: user `sources` are consulted before these.
DEFAULT_SOURCES: dict[str, dict[str, Any]] = {
    "default": {"rule": "none"},
}


class HybridScorer:
    """Routes each sample to rules and/or the GenRM according to its data_source."""

    def __init__(self, judge: PolicyJudge | None, sources: dict[str, dict[str, Any]] | None = None) -> None:
        merged = {**DEFAULT_SOURCES, **(sources or {})}
        self.sources = {name: SourceRule.from_dict(name, dict(d)) for name, d in merged.items()}
        self.judge = judge

    def rule_for(self, data_source: str) -> SourceRule:
        """First pattern (other than "default") matching the data_source, else "default"."""
        for pattern, rule in self.sources.items():
            if pattern != "default" and fnmatch.fnmatchcase(data_source or "", pattern):
                return rule
        return self.sources["default"]

    async def _run_rule(self, sr: SourceRule, solution: str, ground_truth: Any) -> rules.RuleOutcome:
        """Run a rule in a killable worker process, bounded by rule_timeout_s (math-verify has no safe timeout)."""
        if sr.rule == "none":
            return rules.RuleOutcome(0.0, "none")
        out = await rules.pool().run(rules.RULES[sr.rule], (solution, str(ground_truth)), sr.rule_timeout_s)
        if out is None:
            log.warning(
                "rule %s timed out after %.1f s (worker killed); falling back to the judge",
                sr.rule,
                sr.rule_timeout_s,
            )
            return rules.RuleOutcome(0.0, "timeout")
        return out

    async def score(
        self,
        data_source: str,
        solution: str,
        ground_truth: Any,
        ctx: JudgeContext | None,
        reference: Response | None,
    ) -> dict[str, float]:
        """The reward dict of one sample (score + METRIC_KEYS + HYBRID_KEYS)."""
        sr = self.rule_for(data_source)
        outcome = await self._run_rule(sr, solution, ground_truth)
        fmt = rules.format_ok(solution, sr.format_regex) if sr.format_regex else 0.0
        pen = rules.length_penalty(solution, sr.max_chars, sr.length_buffer_chars) if sr.max_chars else 0.0
        decisive = sr.rule != "none" and outcome.status in sr.decisive_on
        if decisive or sr.w_model == 0.0:
            judged = sample_result(0.0)
            model = 0.0
        else:
            if self.judge is None or ctx is None:
                raise ValueError(
                    f"data_source {data_source!r} needs the judge but no judge/prompt is configured"
                )
            judged = await self.judge.score(ctx, Response(text=solution), reference)
            model = judged["score"]
        total = sr.w_rule * outcome.score + sr.w_model * model + sr.w_format * fmt + sr.w_length * pen
        out = {**judged, "score": total}
        out.update(
            rule_score=outcome.score,
            model_score=model,
            judge_skipped=float(decisive or sr.w_model == 0.0),
            rule_timeout=float(outcome.status == "timeout"),
            format_score=fmt,
            length_penalty=pen,
        )
        assert set(out) == {"score", *METRIC_KEYS, *HYBRID_KEYS}
        return out
