"""verl 0.9 reward managers (load with reward.reward_manager.source=importlib) for the GenRM policy reward.

    reward.reward_manager.source=importlib
    reward.reward_manager.module.path=pkg://omni_rl.rewards.managers
    reward.reward_manager.name=OmniRewardManager | GroupWinRateRewardManager

`OmniRewardManager` (per sample, multimodal forwarding): like verl's naive manager, but it reads the
sample's prompt and its images/videos/audio from `raw_prompt` and hands them to
`reward_fns/omni.py` (extra_info.omni_prompt / omni_media), which sends them to the GenRM as OpenAI
content parts.

`GroupWinRateRewardManager` (Pref-GRPO): the reward of a response is its win rate within its prompt
group (same `uid`), judged by the GenRM with `reward_kwargs.group.scheme` (round_robin | anchor | swiss
| adaptive; `omni_rl.judge.tournament`, judged by `omni_rl.rewards.group_judge`). Why a manager + a
barrier: verl's RewardLoopWorker calls `run_single` once per sample and splits the batch over
`reward.num_workers` actors (or streams each finished trajectory to a random worker), so no call sees a
whole group; members meet in a named Ray actor (`omni_rl.rewards.groups`). Validation is recognised by
the row's `extra_info.split` (verl 0.9.1 passes no flag to reward code), checked at start-up with the
worker-concurrency sizing (`omni_rl.rewards.group_setup`). A group of one is scored against the
reference, or pointwise when the row has none. Data sources with a rule take the per-sample hybrid path.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from verl import DataProto
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from omni_rl.data.schema import Response
from omni_rl.judge.media import extract_raw_prompt
from omni_rl.rewards.api import (
    MEDIA_KEY,
    PROMPT_KEY,
    context_from_extra_info,
    get_scorer,
    plain,
    reference_from,
)
from omni_rl.rewards.group_judge import GROUP_KEYS, GroupJudge
from omni_rl.rewards.group_setup import VAL_SPLITS, GroupConfig, check_startup
from omni_rl.rewards.groups import BarrierHandle
from omni_rl.rewards.hybrid import HYBRID_KEYS
from omni_rl.rewards.policy import METRIC_KEYS

log = logging.getLogger(__name__)
ALL_KEYS = ("score", *METRIC_KEYS, *HYBRID_KEYS, *GROUP_KEYS)


def complete_keys(result: dict[str, Any]) -> dict[str, float]:
    """verl stacks reward_extra_info per key: every sample of every path must carry ALL_KEYS."""
    return {k: float(result.get(k, 0.0)) for k in ALL_KEYS}


@dataclass
class Sample:
    """One decoded sample, as verl's naive manager sees it."""

    uid: str
    data_source: str
    response: str
    ground_truth: Any
    extra_info: dict[str, Any]
    validate: bool


class OmniRewardManager(RewardManagerBase):
    """Per-sample GenRM reward that forwards the prompt's media from verl's raw_prompt."""

    def __init__(
        self,
        config: Any,
        tokenizer: Any,
        compute_score: Any,
        reward_router_address: str | None = None,
        reward_model_tokenizer: Any = None,
    ) -> None:
        super().__init__(config, tokenizer, compute_score)
        if compute_score is None:
            raise ValueError(
                f"{type(self).__name__} needs reward.custom_reward_function.path=reward_fns/omni.py"
            )
        self.reward_router_address = reward_router_address
        self.reward_model_tokenizer = reward_model_tokenizer
        fn_cfg = config.reward.get("custom_reward_function") or {}
        self.reward_kwargs: dict[str, Any] = plain(dict(fn_cfg.get("reward_kwargs") or {}))

    async def decode(self, data: DataProto) -> Sample:
        """Response text, row fields and the raw_prompt's text + media (into extra_info)."""
        item = data[-1:][0]
        response_ids = item.batch["responses"]
        valid = int(item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
        text = await self.loop.run_in_executor(
            None, lambda: self.tokenizer.decode(response_ids[:valid], skip_special_tokens=True)
        )
        nt = item.non_tensor_batch
        extra_info = dict(nt.get("extra_info") or {})
        raw_prompt = nt.get("raw_prompt")
        if raw_prompt is not None:
            prompt, media = extract_raw_prompt(list(raw_prompt))
            extra_info[PROMPT_KEY], extra_info[MEDIA_KEY] = prompt, media
        validate = (
            bool(data.meta_info.get("validate", False)) or str(extra_info.get("split", "")) in VAL_SPLITS
        )
        return Sample(
            uid=str(nt.get("uid", "")),
            data_source=str(nt.get("data_source", "")),
            response=text,
            ground_truth=(nt.get("reward_model") or {}).get("ground_truth"),
            extra_info=extra_info,
            validate=validate,
        )

    async def score_one(self, s: Sample) -> dict[str, float]:
        """The per-sample path: reward_fns/omni.py (hybrid rules + GenRM)."""
        extra = {}
        if self.reward_router_address is not None:
            extra = {
                "reward_router_address": self.reward_router_address,
                "reward_model_tokenizer": self.reward_model_tokenizer,
            }
        result = await self.compute_score(
            data_source=s.data_source,
            solution_str=s.response,
            ground_truth=s.ground_truth,
            extra_info=s.extra_info,
            **extra,
        )
        return complete_keys(result if isinstance(result, dict) else {"score": result})

    async def run_single(self, data: DataProto) -> dict[str, Any]:
        """verl's per-sample entry point."""
        result = await self.score_one(await self.decode(data))
        return {"reward_score": result["score"], "reward_extra_info": result}


class GroupWinRateRewardManager(OmniRewardManager):
    """Pref-GRPO: reward = win rate within the uid group, judged pairwise by the GenRM."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = GroupConfig.from_config(self.reward_kwargs.get("group"), self.config)
        check_startup(self.config, self.group)
        if self.group.scheme == "adaptive" and not self.reward_kwargs.get("soft", True):
            raise ValueError(
                "reward_kwargs.group.scheme=adaptive fits soft P(better) margins: set reward_kwargs.soft=true "
                "(a server that returns logprobs), or use scheme=anchor|round_robin with hard verdicts"
            )
        self.barrier = BarrierHandle(max_bytes=self.group.max_bytes, closed_ttl_s=self.group.closed_ttl_s)

    def _judge_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.reward_kwargs.items() if k != "group"}

    async def run_single(self, data: DataProto) -> dict[str, Any]:
        """Join the uid group; the completing member judges it; everyone gets their slot's result."""
        s = await self.decode(data)
        expected = self.group.val_size if s.validate else self.group.size
        scorer = get_scorer(self._judge_kwargs(), self.reward_router_address, self.reward_model_tokenizer)
        if not s.uid or scorer.rule_for(s.data_source).rule != "none":
            return await OmniRewardManager.run_single(self, data)
        if expected < 2:
            return await self._solo(scorer, s, data)
        ctx = _context(s)
        member = {"content_key": hashlib.sha1(s.response.encode()).hexdigest(), "response": s.response}
        joined = await self.barrier.call("join", s.uid, member, expected)
        role = joined["role"]
        if role == "leader":
            group = GroupJudge(scorer, ctx, self.group)
            try:
                results = [
                    complete_keys(r) for r in await group.rank([m["response"] for m in joined["members"]])
                ]
            except Exception as exc:
                await self.barrier.call("publish", s.uid, None, f"{type(exc).__name__}: {exc}")
                raise
            await self.barrier.call("publish", s.uid, results, None, joined["slot"])
            result = results[joined["slot"]]
        elif role == "late":
            responses = [m["response"] for m in joined["members"]]
            result = complete_keys(await GroupJudge(scorer, ctx, self.group).late(s.response, responses))
        else:
            result = await self.barrier.call(
                "wait", s.uid, joined["slot"], self.group.stall_s, self.group.timeout_s, role == "copy"
            )
        return {"reward_score": result["score"], "reward_extra_info": result}

    async def _solo(self, scorer: Any, s: Sample, data: DataProto) -> dict[str, Any]:
        """A group of one (validation with val_kwargs.n=1): vs the reference, else scored pointwise."""
        pairwise = scorer.judge is not None and scorer.judge.cfg.mode == "pairwise"
        if not pairwise or reference_from(s.extra_info, s.ground_truth) is not None:
            return await OmniRewardManager.run_single(self, data)
        # reference-free rows have nothing to compare with: the GenRM scores the response alone
        r = dict(await scorer.judge.score_pointwise(_context(s), Response(s.response)))
        r["group_pointwise"] = 1.0
        out = complete_keys(r)
        return {"reward_score": out["score"], "reward_extra_info": out}


def _context(s: Sample) -> Any:
    """The judge context of a sample (every member of a uid shares the prompt and its media)."""
    ctx = context_from_extra_info(s.extra_info)
    if ctx is None:
        raise ValueError(
            f"group judging of uid {s.uid}: the prompt is missing (no raw_prompt and no extra_info.prompt)"
        )
    return ctx
