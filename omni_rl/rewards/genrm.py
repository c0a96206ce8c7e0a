"""The reward that trains a generative reward model with GRPO: valid format, then the human label matched.

Called by verl's reward managers through `reward_fns/genrm.py` as
``compute_score(data_source, solution_str, ground_truth, extra_info=None, **reward_kwargs)``.
Every call returns the same keys (verl stacks them into arrays and logs them):

- ``score``: the reward. ``default`` style: 0 when the strict format is invalid, otherwise
  ``format_credit + accuracy_credit * accuracy``. ``r1`` style (R1-Reward / StableReinforce):
  ``r1_format_weight * format + accuracy * (1 + consistency_weight * consistency)``.
  Both minus an optional length penalty.
- ``format``, ``accuracy`` (and ``acc``/``pred``, which verl's validation metrics use for maj@N),
  ``verdict``/``label`` ("A"/"B"/"tie"/"none"), ``tie``, ``consistency`` (+1 the reasoning supports
  the answer, -1 it does not, 0 not checked or failed), ``consistency_failed``, ``consistency_checked``,
  ``length_penalty``, ``response_chars``.

A consistency-judge failure is never a free 1.0: its term is 0, ``consistency_failed`` is 1, the
failure is logged and recorded in the judge pipeline's windowed `FailureBudget`; once more than
``consistency_max_failure_rate`` of the last ``consistency_failure_window`` checks failed (on the wire,
unparsable or truncated — a rate, not a consecutive count) the reward raises.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, fields
from typing import Any

from omni_rl.judge.budget import FailureBudget, FailureBudgetExceeded
from omni_rl.judge.client import JudgeClient, JudgeError, base_url_from_address, run_sync
from omni_rl.judge.parse import parse_verdict, think_text
from omni_rl.judge.pipeline import JudgePipeline, JudgeSpec
from omni_rl.prompts.render import render_consistency_messages

log = logging.getLogger(__name__)

STYLES = ("default", "r1")
REWARD_KEYS = (
    "score",
    "format",
    "accuracy",
    "acc",
    "verdict",
    "pred",
    "label",
    "tie",
    "consistency",
    "consistency_failed",
    "consistency_checked",
    "length_penalty",
    "response_chars",
)
# Keyword arguments verl itself adds to the call (GenRM router mode); accepted, not configuration.
_VERL_KWARGS = ("reward_router_address", "reward_model_tokenizer")


@dataclass(frozen=True)
class GenRMRewardConfig:
    """Reward options, set with `+reward.custom_reward_function.reward_kwargs.<key>=<value>`."""

    style: str = "default"  # default | r1
    parse_mode: str = "strict"  # strict (training) | lenient (no format credit, verdict still read)
    format_credit: float = 0.5
    accuracy_credit: float = 1.0
    tie_credit: float = 0.0  # accuracy when label and verdict differ only tie-vs-side; 0 = exact ties only
    r1_format_weight: float = 0.5
    consistency_weight: float = 0.5
    consistency_base_url: str | None = None  # OpenAI-compatible; None -> verl's reward_router_address
    consistency_model: str | None = None
    consistency_template: str = "consistency"
    consistency_timeout: float = 60.0
    consistency_max_concurrency: int = 16
    consistency_max_retries: int = 2
    consistency_max_tokens: int = 256
    consistency_failure_window: int = 64  # checks the failure rate is measured over
    consistency_max_failure_rate: float = 0.25  # raise once more of the window than this failed
    allow_tie: bool = True  # the export template's choice set (False: no format credit for a strict tie)
    consistency_extra_body: dict | None = None  # e.g. vLLM {"structured_outputs": {"choice": [...]}}
    length_limit: int = 0  # characters; 0 disables the length penalty
    length_buffer: int = 1024  # the penalty ramps linearly to its maximum over this many characters
    length_penalty: float = 0.5  # maximum penalty subtracted from the score

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> GenRMRewardConfig:
        """Build from verl's reward_kwargs, refusing unknown keys (a typo must not be silently ignored)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(k for k in kwargs if k not in known and k not in _VERL_KWARGS)
        if unknown:
            raise TypeError(
                f"genrm reward: unknown reward_kwargs {unknown}; valid keys: {', '.join(sorted(known))}"
            )
        cfg = cls(**{k: _plain(v) for k, v in kwargs.items() if k in known})
        cfg.check()
        return cfg

    def check(self) -> None:
        """Reject values that would make the reward meaningless, naming the key."""
        if self.style not in STYLES:
            raise ValueError(f"genrm reward: style must be one of {STYLES}, got {self.style!r}")
        if self.parse_mode not in ("strict", "lenient"):
            raise ValueError(f"genrm reward: parse_mode must be strict or lenient, got {self.parse_mode!r}")
        if not 0.0 <= self.tie_credit <= 1.0:
            raise ValueError(f"genrm reward: tie_credit must be in [0, 1], got {self.tie_credit}")
        if self.consistency_failure_window < 1 or not 0.0 <= self.consistency_max_failure_rate <= 1.0:
            raise ValueError(
                "genrm reward: consistency_failure_window must be >= 1 and consistency_max_failure_rate in [0, 1]"
            )
        if self.length_limit < 0 or self.length_buffer <= 0:
            raise ValueError("genrm reward: length_limit must be >= 0 and length_buffer > 0")


def _plain(value: Any) -> Any:
    """Hydra passes nested reward_kwargs as OmegaConf containers; the OpenAI client needs plain JSON."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def parse_label(ground_truth: Any, data_source: str = "", extra_info: dict | None = None) -> str:
    """The row's human label (A, B or tie) from `reward_model.ground_truth`, or a clear error."""
    value = ground_truth.get("label") if isinstance(ground_truth, dict) else ground_truth
    norm = {"a": "A", "b": "B", "tie": "tie"}.get(str(value).strip().lower()) if value is not None else None
    if norm is None:
        row = (extra_info or {}).get("index", (extra_info or {}).get("id", "?"))
        raise ValueError(
            f"genrm reward: row {row!r} of {data_source!r}: reward_model.ground_truth must be 'A', 'B' or "
            f"'tie' (or {{'label': ...}}), got {ground_truth!r}; re-export the data with omni-rl data prepare"
        )
    return norm


def accuracy(verdict: str | None, label: str, tie_credit: float = 0.0) -> float:
    """1 for a match, `tie_credit` when exactly one of verdict/label is a tie, else 0."""
    if verdict is None:
        return 0.0
    if verdict == label:
        return 1.0
    return tie_credit if "tie" in (verdict, label) else 0.0


def length_penalty(n_chars: int, cfg: GenRMRewardConfig) -> float:
    """Linear ramp from 0 at `length_limit` to `length_penalty` at `length_limit + length_buffer`."""
    if cfg.length_limit <= 0 or n_chars <= cfg.length_limit:
        return 0.0
    return cfg.length_penalty * min(1.0, (n_chars - cfg.length_limit) / cfg.length_buffer)


def assemble(
    solution_str: str, label: str, cfg: GenRMRewardConfig, consistency: tuple[float, float, float] = (0, 0, 0)
) -> dict[str, Any]:
    """All reward parts for one rollout; `consistency` = (value, failed, checked)."""
    verdict = parse_verdict(solution_str, cfg.parse_mode, allow_tie=cfg.allow_tie)  # type: ignore[arg-type]
    fmt = 1.0 if verdict.format_ok else 0.0
    acc = accuracy(verdict.verdict, label, cfg.tie_credit)
    value, failed, checked = consistency
    if cfg.style == "r1":
        base = cfg.r1_format_weight * fmt + acc * (1.0 + cfg.consistency_weight * value)
    elif cfg.parse_mode == "strict" and not fmt:
        base = 0.0
    else:
        base = cfg.format_credit * fmt + cfg.accuracy_credit * acc
    penalty = length_penalty(len(solution_str), cfg)
    name = verdict.verdict or "none"
    return {
        "score": float(base - penalty),
        "format": fmt,
        "accuracy": acc,
        "acc": acc,
        "verdict": name,
        "pred": name,
        "label": label,
        "tie": 1.0 if verdict.verdict == "tie" else 0.0,
        "consistency": float(value),
        "consistency_failed": float(failed),
        "consistency_checked": float(checked),
        "length_penalty": float(penalty),
        "response_chars": float(len(solution_str)),
    }


@dataclass
class _ConsistencyState:
    """Per-process judge pipelines and the windowed failure budget (never pickled with the reward function)."""

    clients: dict[tuple, JudgeClient] = dataclasses.field(default_factory=dict)
    pipelines: dict[tuple, JudgePipeline] = dataclasses.field(default_factory=dict)
    budgets: dict[tuple, FailureBudget] = dataclasses.field(default_factory=dict)
    failures: int = 0
    checks: int = 0


_STATE = _ConsistencyState()


def _budget_key(cfg: GenRMRewardConfig) -> tuple[int, float]:
    return (cfg.consistency_failure_window, cfg.consistency_max_failure_rate)


def _budget(cfg: GenRMRewardConfig) -> FailureBudget:
    """The process's windowed budget for these limits (transport / parse / truncated share one rate)."""
    key = _budget_key(cfg)
    if key not in _STATE.budgets:
        rate = cfg.consistency_max_failure_rate
        _STATE.budgets[key] = FailureBudget(
            "genrm consistency judge", window=cfg.consistency_failure_window,
            max_rates=dict.fromkeys(("transport", "parse", "truncated"), rate),
            rate_keys=dict.fromkeys(("transport", "parse", "truncated"), "consistency_max_failure_rate"),
            hint="Fix the consistency endpoint (consistency_base_url/consistency_model) or its template.",
        )  # fmt: skip
    return _STATE.budgets[key]


def _pipeline(cfg: GenRMRewardConfig, router_address: str | None) -> JudgePipeline:
    """The process's pipeline for the consistency endpoint (one client, so concurrency stays bounded)."""
    base_url = cfg.consistency_base_url or (base_url_from_address(router_address) if router_address else None)
    if not base_url or not cfg.consistency_model:
        raise ValueError(
            "genrm reward: style=r1 needs a consistency judge: set reward_kwargs.consistency_base_url "
            "(or enable verl's reward model router) and reward_kwargs.consistency_model"
        )
    key = (base_url, cfg.consistency_model, cfg.consistency_timeout, cfg.consistency_max_concurrency)
    if key not in _STATE.clients:
        _STATE.clients[key] = JudgeClient(
            base_url,
            cfg.consistency_model,
            max_concurrency=cfg.consistency_max_concurrency,
            timeout=cfg.consistency_timeout,
            max_retries=cfg.consistency_max_retries,
        )
    spec = JudgeSpec(template=cfg.consistency_template, parse_mode="lenient", soft=False,
                     max_tokens=cfg.consistency_max_tokens, extra_body=cfg.consistency_extra_body)  # fmt: skip
    extra = json.dumps(cfg.consistency_extra_body, sort_keys=True, default=str)
    pkey = (*key, cfg.consistency_template, cfg.consistency_max_tokens, extra, *_budget_key(cfg))
    if pkey not in _STATE.pipelines:
        _STATE.pipelines[pkey] = JudgePipeline(_STATE.clients[key], spec, _budget(cfg))
    return _STATE.pipelines[pkey]


def _count(failed: bool, why: str) -> None:
    """Per-process counters for consistency_stats (the limits live in the budget)."""
    _STATE.checks += 1
    if failed:
        _STATE.failures += 1
        log.warning(
            "genrm consistency check failed (%d of %d so far): %s", _STATE.failures, _STATE.checks, why
        )


async def check_consistency(
    solution_str: str, verdict: str, cfg: GenRMRewardConfig, router_address: str | None = None
) -> tuple[float, float]:
    """(+1 | -1 | 0, failed) — does the reasoning support the answer, per a second judge."""
    reasoning = think_text(solution_str) or ""
    prompt = render_consistency_messages(reasoning, cfg.consistency_template)
    pipeline = _pipeline(cfg, router_address)
    try:
        judged = await pipeline.judge_messages(
            prompt.messages, template=cfg.consistency_template, temperature=0.0
        )
    except FailureBudgetExceeded:
        _count(True, "failure budget exceeded")
        raise
    except JudgeError as exc:
        _count(True, f"{type(exc).__name__}: {exc}")
        return 0.0, 1.0
    if judged.verdict is None:
        _count(True, f"unparsable consistency answer ({judged.reason}): {judged.text[:120]!r}")
        return 0.0, 1.0
    _count(False, "")
    return (1.0 if judged.verdict == verdict else -1.0), 0.0


async def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """verl 0.9 reward function for GenRM training (async: verl awaits it on the reward loop)."""
    cfg = GenRMRewardConfig.from_kwargs(kwargs)
    label = parse_label(ground_truth, data_source, extra_info)
    solution_str = solution_str if isinstance(solution_str, str) else ""
    consistency: tuple[float, float, float] = (0.0, 0.0, 0.0)
    if cfg.style == "r1":
        verdict = parse_verdict(solution_str, cfg.parse_mode, allow_tie=cfg.allow_tie).verdict  # type: ignore[arg-type]
        if verdict is not None and accuracy(verdict, label, cfg.tie_credit) > 0:
            value, failed = await check_consistency(
                solution_str, verdict, cfg, kwargs.get("reward_router_address")
            )
            consistency = (value, failed, 1.0)
    return assemble(solution_str, label, cfg, consistency)


def compute_score_sync(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Blocking form of compute_score for callers without an event loop (e.g. TRL, scripts)."""
    return run_sync(compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs))


def consistency_stats() -> dict[str, float]:
    """This process's consistency-judge counters (checks, failures) and the budget's per-kind counts/rates."""
    out = {
        "genrm/consistency_checks": float(_STATE.checks),
        "genrm/consistency_failures": float(_STATE.failures),
    }
    for budget in _STATE.budgets.values():
        out.update(budget.metrics("genrm/consistency_budget/"))
    return out
