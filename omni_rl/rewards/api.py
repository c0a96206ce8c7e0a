"""verl's per-sample call → a HybridScorer, built once per process and per configuration.

verl ships the reward function to Ray workers by path; each worker process keeps one scorer (one
JudgeClient, one HTTP pool) per distinct reward_kwargs, so thousands of concurrent samples share a
bounded connection pool instead of opening one client each.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from omni_rl.data.schema import Media, Response
from omni_rl.judge.client import base_url_from_address
from omni_rl.judge.media import extract_raw_prompt
from omni_rl.rewards.hybrid import HybridScorer
from omni_rl.rewards.policy import JudgeContext, PolicyJudge, PolicyJudgeConfig

_SCORERS: dict[str, HybridScorer] = {}

#: extra_info keys our reward managers fill from verl's raw_prompt (they win over the row's own keys).
PROMPT_KEY, MEDIA_KEY = "omni_prompt", "omni_media"
#: reward_kwargs read elsewhere: `sources` by the hybrid scorer, `group` by GroupWinRateRewardManager.
NON_JUDGE_KEYS = ("sources", "group")


def genrm_training_keys() -> frozenset[str]:
    """Options of the GenRM *training* reward (reward_fns/genrm.py) that a policy reward never uses.

    A shared CPU profile (cpu_tiny) sets some of them (a length penalty) for the GenRM job; when the policy
    job uses the same profile they are dropped here with a warning naming them, not refused. Any other
    unknown key is still an error (a typo must not be silently ignored).
    """
    from dataclasses import fields

    from omni_rl.rewards.genrm import GenRMRewardConfig

    return frozenset(f.name for f in fields(GenRMRewardConfig)) - frozenset(
        f.name for f in fields(PolicyJudgeConfig)
    )


def _judge_config(kwargs: dict[str, Any], router: str | None, rm_tokenizer: Any) -> PolicyJudgeConfig:
    """reward_kwargs + router address + environment → a validated PolicyJudgeConfig."""
    training_only = sorted(set(kwargs) & genrm_training_keys())
    if training_only:
        logging.getLogger(__name__).warning(
            "reward_fns/omni.py: ignoring GenRM-training reward_kwargs %s (they configure reward_fns/genrm.py)",
            training_only,
        )
    kw = {k: v for k, v in kwargs.items() if k not in NON_JUDGE_KEYS and k not in training_only}
    if not kw.get("base_url"):
        if router:
            kw["base_url"] = base_url_from_address(router)
            if not kw.get("model") and rm_tokenizer is not None:
                kw["model"] = getattr(rm_tokenizer, "name_or_path", None) or "auto"
        else:
            kw["base_url"] = os.environ.get("OMNI_RL_JUDGE_URL")
    if not kw.get("model"):
        kw["model"] = os.environ.get("OMNI_RL_JUDGE_MODEL", "auto")
    return PolicyJudgeConfig.from_kwargs(kw)


def plain(obj: Any) -> Any:
    """Hydra hands nested reward_kwargs over as DictConfig/ListConfig: make them plain json-able values."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, DictConfig | ListConfig):
            return OmegaConf.to_container(obj, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with hydra, a hard dependency
        pass
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def get_scorer(kwargs: dict[str, Any], router: str | None = None, rm_tokenizer: Any = None) -> HybridScorer:
    """The process-wide scorer for this configuration (created on first use)."""
    kwargs = plain(kwargs)
    key = json.dumps(
        [kwargs, router, getattr(rm_tokenizer, "name_or_path", None)], sort_keys=True, default=str
    )
    scorer = _SCORERS.get(key)
    if scorer is None:
        cfg = _judge_config(kwargs, router, rm_tokenizer)
        judge = PolicyJudge(cfg) if cfg.base_url else None
        scorer = _SCORERS[key] = HybridScorer(judge, kwargs.get("sources"))
    return scorer


def _media(value: Any) -> Media:
    """A Media from a dict of lists (paths, or PIL images from raw_prompt) or a Media."""
    if value is None:
        return Media()
    if isinstance(value, Media):
        return value
    return Media(
        images=list(value.get("images") or []),
        videos=list(value.get("videos") or []),
        audios=list(value.get("audios") or []),
    )


def context_from_extra_info(extra_info: dict[str, Any]) -> JudgeContext | None:
    """Prompt/media/criteria/task from a row's extra_info (None when no prompt is available)."""
    prompt = extra_info.get(PROMPT_KEY) or extra_info.get("prompt") or extra_info.get("question")
    media = extra_info.get(MEDIA_KEY) or extra_info.get("prompt_media")
    if isinstance(prompt, list | tuple):  # a chat list (verl raw_prompt form)
        prompt, media = extract_raw_prompt(prompt)
    if not prompt and not media:
        return None
    return JudgeContext(
        prompt=str(prompt or ""),
        prompt_media=_media(media),
        criteria=extra_info.get("criteria") or None,
        task=extra_info.get("task") or None,
    )


def reference_from(extra_info: dict[str, Any], ground_truth: Any) -> Response | None:
    """The reference response: extra_info.reference (text or {text, media}), else the ground truth text."""
    ref = extra_info.get("reference")
    if isinstance(ref, dict):
        return Response(text=str(ref.get("text") or ""), media=_media(ref.get("media")))
    if isinstance(ref, str) and ref.strip():
        return Response(text=ref)
    if isinstance(ground_truth, str) and ground_truth.strip():
        return Response(text=ground_truth)
    return None


async def score_sample(
    *,
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None,
    reward_router_address: str | None,
    reward_model_tokenizer: Any,
    reward_kwargs: dict[str, Any],
) -> dict[str, float]:
    """One sample's reward dict (see reward_fns/omni.py for the row fields it reads)."""
    extra_info = dict(extra_info or {})
    if reward_kwargs.get("mode") == "bt":
        return await score_bt_sample(data_source, solution_str, ground_truth, extra_info, reward_kwargs)
    scorer = get_scorer(reward_kwargs, reward_router_address, reward_model_tokenizer)
    ctx = context_from_extra_info(extra_info)
    rule = scorer.rule_for(data_source)
    needs_judge = rule.w_model != 0.0
    if needs_judge and ctx is None:
        raise ValueError(
            f"data_source {data_source!r}: the judge needs the prompt but extra_info has no "
            "'prompt'/'question'; add it when exporting the parquet, or load omni_rl/rewards/managers.py "
            "as the reward manager (it reads verl's raw_prompt)"
        )
    if needs_judge and scorer.judge is None:
        raise ValueError(
            "no GenRM endpoint: set reward_kwargs.base_url (or $OMNI_RL_JUDGE_URL), or enable verl's "
            "reward model pool (reward.reward_model.enable=true) so verl passes reward_router_address"
        )
    return await scorer.score(
        data_source, solution_str, ground_truth, ctx, reference_from(extra_info, ground_truth)
    )


async def score_bt_sample(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any],
    reward_kwargs: dict[str, Any],
) -> dict[str, float]:
    """Pointwise Bradley-Terry mode: an in-process BT model, run off the event loop (it is CPU/GPU bound)."""
    import asyncio

    from omni_rl.bt.reward import compute_score as bt_compute_score

    kwargs = {k: v for k, v in reward_kwargs.items() if k != "mode"}
    return await asyncio.to_thread(
        bt_compute_score, data_source, solution_str, ground_truth, extra_info, **kwargs
    )
