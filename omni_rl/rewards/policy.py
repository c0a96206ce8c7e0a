"""A trained GenRM as the reward of another policy: pairwise vs a reference, pointwise, or pair comparisons.

`PolicyJudge` is a thin adapter over `omni_rl.judge.pipeline.JudgePipeline` (neutralise → render →
send → parse → soft verdict → swap-combine) that turns its outcomes into verl reward dicts. Every
outcome carries the same metric keys, and a judge failure never becomes a silent constant: it raises,
or (on_failure="neutral") returns the documented neutral reward with `judge_failed=1`; every judge call
is recorded in the pipeline's windowed `FailureBudget` (transport / parse / truncated rates), which
stops the run loudly past `max_failure_rate` / `max_parse_failure_rate` / `max_truncated_rate`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, fields
from typing import Any, Literal

from omni_rl.data.schema import Response
from omni_rl.judge.budget import FailureBudget, FailureBudgetExceeded
from omni_rl.judge.client import JudgeClient, JudgeError
from omni_rl.judge.media import MediaLimits
from omni_rl.judge.pipeline import CombinedJudgement, JudgeContext, JudgePipeline, JudgeSpec

log = logging.getLogger(__name__)
__all__ = [
    "METRIC_KEYS",
    "NEUTRAL_REWARD",
    "JudgeContext",
    "PolicyComparison",
    "PolicyJudge",
    "PolicyJudgeConfig",
]

#: The reward given when the judge could not be used (server failure with on_failure="neutral", or no
#: parsable verdict in any order). 0.5 = "as good as the reference" / the middle of the 1–10 scale, so
#: it neither rewards nor punishes the policy; every such sample is flagged in the metrics.
NEUTRAL_REWARD = 0.5

#: Per-sample metric keys; verl requires every sample of a batch to return the same keys.
#: `choice_mass` is the mean probability mass the judge put on the choice tokens (0 when not measured).
METRIC_KEYS = ("judge_failed", "parse_failed", "swap_disagree", "judge_calls", "soft_verdict", "choice_mass")


@dataclass
class PolicyJudgeConfig:
    """Everything a policy-reward judge needs; also the schema of `reward_kwargs` (see reward_fns/omni.py)."""

    base_url: str | None = None  # OpenAI-compatible endpoint (or "host:port"); else the reward router
    model: str | None = None  # served model name; None/"auto" = the server's first model
    api_key: str | None = None
    mode: Literal["pairwise", "pointwise"] = "pairwise"
    swap: bool = True  # judge both orders and average (position-bias control)
    template: str = "pairwise_tie"
    pointwise_template: str = "pointwise"
    soft: bool = True  # P(better) from answer-token logprobs when the server returns them
    top_logprobs: int = 20
    min_choice_mass: float = 0.5  # below this logprob mass on the choice tokens, use the parsed verdict
    parse_mode: Literal["strict", "lenient"] = "lenient"
    max_tokens: int = 1024
    temperature: float = 0.0
    seed: int = 0
    extra_body: dict[str, Any] | None = None  # e.g. {"structured_outputs": {"regex": ...}}
    max_concurrency: int = 32
    timeout: float = 120.0
    max_retries: int = 4
    on_failure: Literal["raise", "neutral"] = "raise"
    neutral_reward: float = NEUTRAL_REWARD
    max_failure_rate: float = (
        0.25  # raise once this share of the last `failure_window` calls failed on the wire
    )
    max_parse_failure_rate: float = 0.25  # ... were unparsable
    max_truncated_rate: float = 0.25  # ... hit max_tokens before a verdict
    failure_window: int = 64
    max_images: int = 16
    max_videos: int = 2
    max_audios: int = 4
    max_image_side: int | None = 1536
    default_task: str = "t2t"

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> PolicyJudgeConfig:
        """Build from `reward_kwargs`, refusing unknown keys (a typo must not be silently ignored)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise ValueError(f"unknown reward_kwargs {unknown}; valid keys: {sorted(names)}")
        cfg = cls(**kwargs)
        if cfg.mode not in ("pairwise", "pointwise"):
            raise ValueError(f"reward_kwargs.mode must be pairwise|pointwise, got {cfg.mode!r}")
        if cfg.on_failure not in ("raise", "neutral"):
            raise ValueError(f"reward_kwargs.on_failure must be raise|neutral, got {cfg.on_failure!r}")
        return cfg

    def limits(self) -> MediaLimits:
        """Media limits for the judge request."""
        return MediaLimits(
            max_images=self.max_images,
            max_videos=self.max_videos,
            max_audios=self.max_audios,
            max_image_side=self.max_image_side,
        )

    def spec(self) -> JudgeSpec:
        """The pipeline's view of this config."""
        return JudgeSpec(
            template=self.template, pointwise_template=self.pointwise_template, parse_mode=self.parse_mode,
            soft=self.soft, top_logprobs=self.top_logprobs, min_choice_mass=self.min_choice_mass,
            max_tokens=self.max_tokens, temperature=self.temperature, seed=self.seed,
            extra_body=self.extra_body, pointwise_extra_body=self.extra_body if self.mode == "pointwise" else None,
            limits=self.limits(), default_task=self.default_task,
        )  # fmt: skip

    def budget(self) -> FailureBudget:
        """The windowed failure budget every judge call of this reward is recorded in."""
        return FailureBudget(
            "policy reward judge", window=max(1, self.failure_window),
            max_rates={"transport": self.max_failure_rate, "parse": self.max_parse_failure_rate,
                       "truncated": self.max_truncated_rate},
            rate_keys={"transport": "max_failure_rate", "parse": "max_parse_failure_rate",
                       "truncated": "max_truncated_rate"},
            hint=f"Check the GenRM server at {self.base_url}, its template and max_tokens.",
        )  # fmt: skip


@dataclass
class PolicyComparison:
    """P(x better than y) after debiasing, with the counters the metrics need."""

    p_x: float | None
    disagree: bool = False
    calls: int = 0
    parse_failures: int = 0
    soft: bool = False
    failed: bool = False
    error: str = ""
    mass: float = 0.0

    @classmethod
    def of(cls, c: CombinedJudgement) -> PolicyComparison:
        """From the pipeline's combined comparison."""
        return cls(p_x=c.p_x, disagree=c.disagree, calls=c.calls, parse_failures=c.parse_failures,
                   soft=c.soft, mass=c.mass)  # fmt: skip


def sample_result(score: float, **metrics: float) -> dict[str, float]:
    """A reward dict with `score` and every METRIC_KEYS entry (missing ones are 0)."""
    out = {"score": float(score)}
    out.update({k: float(metrics.get(k, 0.0)) for k in METRIC_KEYS})
    return out


class PolicyJudge:
    """Scores policy responses with a GenRM through the judge pipeline; picklable (client built lazily)."""

    def __init__(self, cfg: PolicyJudgeConfig, client: JudgeClient | None = None) -> None:
        self.cfg = cfg
        self._client = client
        self._pipeline: JudgePipeline | None = None
        self.budget = cfg.budget()
        self.counters = {"samples": 0, "judge_failed": 0, "parse_failed": 0, "swap_disagree": 0}

    @property
    def client(self) -> JudgeClient:
        """The shared JudgeClient (built on first use)."""
        if self._client is None:
            if not self.cfg.base_url:
                raise ValueError(
                    "PolicyJudge needs base_url (reward_kwargs.base_url, OMNI_RL_JUDGE_URL or the router)"
                )
            self._client = JudgeClient(
                self.cfg.base_url,
                self.cfg.model or "auto",
                api_key=self.cfg.api_key,
                max_concurrency=self.cfg.max_concurrency,
                timeout=self.cfg.timeout,
                max_retries=self.cfg.max_retries,
                default_sampling={"temperature": self.cfg.temperature, "seed": self.cfg.seed},
            )
        return self._client

    @property
    def pipeline(self) -> JudgePipeline:
        """The one judge pipeline this reward goes through (shares the client and the budget)."""
        if self._pipeline is None:
            self._pipeline = JudgePipeline(self.client, self.cfg.spec(), self.budget)
        return self._pipeline

    def __getstate__(self) -> dict[str, Any]:
        return {"cfg": self.cfg, "_client": self._client, "_pipeline": None, "budget": self.cfg.budget(),
                "counters": dict(self.counters)}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _raise_or_neutral(self, exc: BaseException) -> None:
        """Budget stops and non-judge errors always raise; a judge failure raises unless on_failure=neutral."""
        if isinstance(exc, FailureBudgetExceeded) or not isinstance(exc, JudgeError):
            raise exc
        if self.cfg.on_failure == "raise":
            raise exc
        log.warning("judge failed; sample given the neutral reward %.2f (judge_failed=1): %s",
                    self.cfg.neutral_reward, exc)  # fmt: skip

    # -- pairs -----------------------------------------------------------------------------------
    async def compare(
        self, ctx: JudgeContext, x: Response, y: Response, order_key: str = ""
    ) -> PolicyComparison:
        """P(x better than y): both orders when swap is on, else one order chosen by a stable hash."""
        x_first = int(hashlib.sha1(order_key.encode()).hexdigest(), 16) % 2 == 0
        try:
            c = await self.pipeline.compare(ctx, x, y, swap=self.cfg.swap, x_first=x_first)
        except Exception as exc:
            self._raise_or_neutral(exc)
            return PolicyComparison(p_x=None, calls=2 if self.cfg.swap else 1, failed=True, error=str(exc))
        return PolicyComparison.of(c)

    # -- per-sample rewards ----------------------------------------------------------------------
    async def score(
        self, ctx: JudgeContext, response: Response, reference: Response | None
    ) -> dict[str, float]:
        """The per-sample reward dict for the configured mode."""
        if self.cfg.mode == "pointwise":
            return await self.score_pointwise(ctx, response)
        if reference is None or reference.is_empty():
            raise ValueError(
                "pairwise mode needs a reference: set the row's reward_model.ground_truth or "
                "extra_info.reference (or use reward_kwargs.mode=pointwise)"
            )
        out = await self.compare(ctx, response, reference, order_key=response.text)
        return self._finish_pair(out)

    def _finish_pair(self, out: PolicyComparison) -> dict[str, float]:
        """Turn a pair outcome into the reward dict, applying the neutral policy."""
        neutral = out.failed or out.p_x is None
        score = self.cfg.neutral_reward if neutral else float(out.p_x)  # type: ignore[arg-type]
        self.account(out.failed, out.p_x is None and not out.failed, out.disagree)
        return sample_result(
            score,
            judge_failed=out.failed,
            parse_failed=out.parse_failures,
            swap_disagree=out.disagree,
            judge_calls=out.calls,
            soft_verdict=out.soft,
            choice_mass=out.mass,
        )

    async def score_pointwise(self, ctx: JudgeContext, response: Response) -> dict[str, float]:
        """1–10 (template lo–hi) score normalised to [0, 1]."""
        try:
            pj = await self.pipeline.score(ctx, response)
        except Exception as exc:
            self._raise_or_neutral(exc)
            self.account(True, False, False)
            return sample_result(self.cfg.neutral_reward, judge_failed=1, judge_calls=1)
        self.account(False, pj.value is None, False)
        if pj.value is None:
            return sample_result(self.cfg.neutral_reward, parse_failed=1, judge_calls=1)
        return sample_result(pj.value, judge_calls=1)

    # -- counters --------------------------------------------------------------------------------
    def account(self, failed: bool, parse_failed: bool, disagree: bool) -> None:
        """Per-sample counters for reports (the failure *limits* live in the pipeline's budget)."""
        self.counters["samples"] += 1
        self.counters["judge_failed"] += int(failed)
        self.counters["parse_failed"] += int(parse_failed)
        self.counters["swap_disagree"] += int(disagree)

    def metrics(self) -> dict[str, float]:
        """Client and budget counters (transport / parse / truncated totals and windowed rates)."""
        return self.pipeline.metrics()
