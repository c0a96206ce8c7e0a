"""verl 0.9 reward function: a saved BT reward model, run in-process, as a pointwise policy reward.

    reward.custom_reward_function.path=pkg://omni_rl.bt.reward   (name: compute_score)
    +reward.custom_reward_function.reward_kwargs.bt_model_path=/path/to/bt_model
    +reward.custom_reward_function.reward_kwargs.bt_device=cuda   (default cpu)

Row fields read (the same as reward_fns/omni.py): the prompt and media our reward managers forward
from verl's raw_prompt (extra_info.omni_prompt / omni_media), else extra_info.prompt (or .question; a
chat list is accepted and its last user turn is used) and extra_info.prompt_media {images, videos,
audios}; extra_info.criteria (else the model's default criteria). `ground_truth` is not used: a BT
reward judges the response alone. Media the BT processor cannot read raise (never scored blind).
The model loads once per reward worker process (see omni_rl.bt.score).
"""

from __future__ import annotations

import os
from typing import Any

from omni_rl.bt.collate import ScoreItem, unsupported_reason
from omni_rl.bt.score import BTScorer
from omni_rl.data.schema import Media, Response

ENV_MODEL = "OMNI_RL_BT_MODEL"
#: extra_info keys our reward managers fill from verl's raw_prompt (= omni_rl.rewards.api.PROMPT_KEY/MEDIA_KEY).
FORWARDED_PROMPT, FORWARDED_MEDIA = "omni_prompt", "omni_media"


def _as_media(value: Any) -> Media:
    """Media from a {images, videos, audios} dict whose items may be paths or PIL images (raw_prompt)."""
    if isinstance(value, Media):
        return value
    value = value or {}
    return Media(**{k: list(value.get(k) or []) for k in ("images", "videos", "audios")})


def _prompt_and_media(extra_info: dict[str, Any]) -> tuple[str, Media]:
    """The prompt text and its media: forwarded by our managers, else from the row (string or chat list)."""
    if extra_info.get(FORWARDED_PROMPT) is not None or extra_info.get(FORWARDED_MEDIA):
        prompt: Any = extra_info.get(FORWARDED_PROMPT) or ""
        media = _as_media(extra_info.get(FORWARDED_MEDIA))
    else:
        prompt = extra_info.get("prompt") or extra_info.get("question")
        media = _as_media(extra_info.get("prompt_media"))
    if isinstance(prompt, list | tuple):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            raise ValueError("extra_info.prompt is a chat list without a user message")
        content = users[-1].get("content")
        if not isinstance(content, str):
            raise ValueError(
                "extra_info.prompt: the last user message must be text with <image> placeholders"
            )
        prompt = content
    if not isinstance(prompt, str) or not (prompt.strip() or not media.is_empty()):
        raise ValueError(
            "BT reward needs the prompt: put it in the row's extra_info.prompt (verl passes only "
            f"extra_info to reward functions); extra_info keys were {sorted(extra_info)}"
        )
    return prompt, media


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any = None,
    extra_info: dict[str, Any] | None = None,
    bt_model_path: str | None = None,
    bt_device: str = "cpu",
    bt_dtype: str | None = None,
    bt_batch_size: int = 16,
    **_: Any,
) -> dict[str, float]:
    """Score one policy response; returns {"score", "bt_reward"} (same keys for every sample)."""
    path = bt_model_path or os.environ.get(ENV_MODEL)
    if not path:
        raise ValueError(
            f"set reward_kwargs.bt_model_path (or ${ENV_MODEL}) to a saved BT reward model folder"
        )
    info = dict(extra_info or {})
    prompt, media = _prompt_and_media(info)
    scorer = BTScorer(path, device=bt_device, dtype=bt_dtype, batch_size=bt_batch_size)
    item = ScoreItem(prompt, Response(text=solution_str), media, info.get("criteria"))
    if not media.is_empty():
        reason = unsupported_reason(item, scorer.media_kinds())
        if reason:
            row = info.get("index", info.get("id", "?"))
            raise ValueError(
                f"BT reward, row {row!r} of {data_source!r}: the prompt carries media the BT model at {path} "
                f"cannot read ({reason}); use a BT model trained on a backbone that sees them"
            )
    reward = scorer.score_one(item)
    return {"score": reward, "bt_reward": reward}
