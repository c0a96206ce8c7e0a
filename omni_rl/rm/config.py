"""What a reward model is (RMConfig) and what it counted (RMStats); the public face re-exports both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omni_rl.judge.budget import FailureBudget, FailureBudgetExceeded
from omni_rl.judge.media import MediaLimits
from omni_rl.judge.pipeline import JudgeSpec


class RMFailureError(FailureBudgetExceeded):
    """Too many judge outputs could not be parsable: the RM is broken or misconfigured; stop loudly."""


@dataclass
class RMConfig:
    """How to reach and prompt a reward model (Hydra keys under `judge.` in `omni-rl bon`)."""

    kind: str = "genrm"  # genrm | scalar | bt
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "genrm"
    api_key: str | None = None
    template: str = "pairwise_tie"  # pairwise template name or yaml path
    pointwise_template: str = "pointwise"
    parse_mode: str = "lenient"  # strict | lenient (see omni_rl.judge.parse)
    soft: bool = True  # P(better) from answer-token logprobs (P(A)+½P(tie)), as in the policy reward
    min_choice_mass: float = 0.5  # below this mass on the choice tokens, the parsed verdict is used
    top_logprobs: int = 20
    temperature: float = 0.0  # deterministic judging by default (recorded in reports)
    seed: int = 0
    max_tokens: int = 1024
    extra_body: dict[str, Any] = field(default_factory=dict)  # e.g. structured_outputs for pairs
    pointwise_extra_body: dict[str, Any] = field(default_factory=dict)
    max_concurrency: int = 32
    timeout: float = 120.0
    max_retries: int = 4
    debias: bool = True  # judge both orders in compare/knockout/round-robin
    task: str | None = None  # schema task; inferred from media when None
    scalar_fn: str | None = None  # "module:attr" callable, for kind=scalar
    bt_path: str | None = None  # saved BT reward model folder, for kind=bt
    bt_device: str = "cpu"
    max_parse_failure_rate: float = 0.5  # fail loudly above this windowed rate (unparsable or truncated)
    min_judgments: int = 20  # ... once this many judgments are in the window
    failure_window: int = 200

    def spec(self, limits: MediaLimits | None = None) -> JudgeSpec:
        """The judge pipeline's view of this config."""
        return JudgeSpec(
            template=self.template, pointwise_template=self.pointwise_template, parse_mode=self.parse_mode,
            soft=self.soft, top_logprobs=self.top_logprobs, min_choice_mass=self.min_choice_mass,
            max_tokens=self.max_tokens, temperature=self.temperature, seed=self.seed,
            extra_body=self.extra_body or None, pointwise_extra_body=self.pointwise_extra_body or None,
            limits=limits or MediaLimits(),
        )  # fmt: skip

    def budget(self) -> FailureBudget:
        """Parse and truncation rates over a window; transport failures raise from the client already."""
        rate = self.max_parse_failure_rate
        return FailureBudget(
            "reward model", window=max(self.failure_window, self.min_judgments), min_outcomes=self.min_judgments,
            max_rates={"transport": None, "parse": rate, "truncated": rate},
            rate_keys={"parse": "max_parse_failure_rate", "truncated": "max_parse_failure_rate"},
            hint="Check the template (judge.template), parse mode (judge.parse_mode), max_tokens and that "
            "the endpoint serves a GenRM.",
            error=RMFailureError,
        )  # fmt: skip


@dataclass
class RMStats:
    """Parse outcomes, so an unparsable judge is counted and reported, never silently neutral."""

    judgments: int = 0
    parse_failures: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, ok: bool, reason: str) -> None:
        """Count one judgment."""
        self.judgments += 1
        if not ok:
            self.parse_failures += 1
            self.reasons[reason[:80]] = self.reasons.get(reason[:80], 0) + 1

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for reports."""
        rate = self.parse_failures / self.judgments if self.judgments else 0.0
        return {**self.__dict__, "parse_failure_rate": rate}
