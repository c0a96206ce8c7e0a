"""Issue 13 defect 7: mode=bt scores with the prompt and media our managers forward, or raises."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from omni_rl.bt.score import BTScorer
from omni_rl.data.schema import Media
from omni_rl.rewards.api import MEDIA_KEY, PROMPT_KEY, score_sample


def _save_bt(backbone: Path, out: Path) -> Path:
    """An untrained-head BT model on a tiny backbone, saved like `omni-rl train-bt` does."""
    from transformers import AutoProcessor

    from omni_rl.bt.model import BTRewardModel

    BTRewardModel.from_backbone(str(backbone)).save_pretrained(out)
    AutoProcessor.from_pretrained(backbone).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def vl_bt(tiny_vl_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_bt(tiny_vl_model, tmp_path_factory.mktemp("bt_vl"))


@pytest.fixture(scope="module")
def text_bt(tiny_text_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_bt(tiny_text_model, tmp_path_factory.mktemp("bt_text"))


def _bt(extra_info: dict, model: Path, response: str = "A cat on a sofa.") -> dict:
    kwargs = {"mode": "bt", "bt_model_path": str(model)}
    return asyncio.run(
        score_sample(data_source="src", solution_str=response, ground_truth=None, extra_info=extra_info,
                     reward_router_address=None, reward_model_tokenizer=None, reward_kwargs=kwargs)
    )  # fmt: skip


def test_forwarded_prompt_and_image_are_what_the_bt_model_scores(vl_bt: Path, real_media: Path) -> None:
    image = str(real_media / "1.jpg")
    prompt = "<image>\nWhat is shown in the picture?"
    forwarded = {PROMPT_KEY: prompt, MEDIA_KEY: {"images": [image], "videos": [], "audios": []}}
    out = _bt(forwarded, vl_bt)  # the old code ignored omni_prompt/omni_media and raised "needs the prompt"
    scorer = BTScorer(str(vl_bt))
    with_image = scorer.score(prompt, "A cat on a sofa.", prompt_media=Media(images=[image]))
    text_only = scorer.score("What is shown in the picture?", "A cat on a sofa.")
    assert out["score"] == pytest.approx(with_image, rel=1e-5, abs=1e-6)
    assert with_image != pytest.approx(text_only, rel=1e-6, abs=1e-9)  # the image changed the reward


def test_media_the_bt_processor_cannot_read_raise(text_bt: Path, real_media: Path) -> None:
    forwarded = {PROMPT_KEY: "<image>\nWhat is shown?", MEDIA_KEY: {"images": [str(real_media / "1.jpg")]}}
    with pytest.raises(ValueError, match=r"cannot read .*images"):
        _bt(forwarded, text_bt)
    assert set(_bt({PROMPT_KEY: "What is shown?", MEDIA_KEY: {}}, text_bt)) == {"score", "bt_reward"}
