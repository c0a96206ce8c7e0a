"""reward_fns/omni.py + OmniRewardManager, loaded by verl's own `load_reward_manager` and run through its
`run_single` (what each RewardLoopWorker calls per sample), forwarding the policy prompt's image from verl's
`raw_prompt` to the real tiny VL GenRM server.

Proven on the model, not the wire: each judge request is replayed with and without its image (the prompt
grows by the processor's image tokens), and two samples that differ only in their prompt image get different
rewards (the soft verdict comes from the judge's logprobs over a regex-forced answer).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image
from transformers import AutoTokenizer

from omni_rl.testing.media_tokens import expected_media_tokens_many
from omni_rl.testing.proxy import RecordingProxy
from omni_rl.testing.verl_batch import rollout_dataproto

pytestmark = [pytest.mark.server, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
PAIR_REGEX = r"<think>[a-z ]{1,12}</think><answer>(A|B)</answer>"
QUESTION = "What is in the photo?"


def _config(tok_path: Path, kwargs: dict) -> object:
    """The reward slice of a verl 0.9 trainer config (reward.* keys only)."""
    return OmegaConf.create({
        "actor_rollout_ref": {"model": {"path": str(tok_path), "tokenizer_path": None},
                              "rollout": {"n": 1, "val_kwargs": {"n": 1}}},
        "reward": {
            "num_workers": 1,
            "custom_reward_function": {"path": str(REPO / "reward_fns/omni.py"), "name": "compute_score",
                                       "reward_kwargs": kwargs},
            "reward_manager": {"source": "importlib", "name": "OmniRewardManager",
                               "module": {"path": "pkg://omni_rl.rewards.managers", "name": "custom_reward_manager"}},
            "reward_model": {"enable": False, "enable_resource_pool": False, "model_path": None},
        },
    })  # fmt: skip


def _batch(tok, images: list[Image.Image]):
    """One rollout sample per image: same question, same response, same reference; only the image differs."""
    raw = [[{"role": "user", "content": [{"type": "image", "image": im}, {"type": "text", "text": QUESTION}]}]
           for im in images]  # fmt: skip
    p_ids = [tok(QUESTION)["input_ids"] for _ in images]
    r_ids = [tok("A red car.")["input_ids"] + [tok.eos_token_id] for _ in images]
    non_tensors = {
        "uid": [f"u{i}" for i in range(len(images))],
        "data_source": ["vqa"] * len(images),
        "reward_model": [{"ground_truth": "A tree next to a street."}] * len(images),
        "extra_info": [{"criteria": "Be faithful to the image."}] * len(images),
        "raw_prompt": raw,
    }
    return rollout_dataproto(p_ids, r_ids, tok.pad_token_id or 0, non_tensors)


def _prompt_tokens(server, body: dict) -> int:
    import httpx

    body = {**body, "max_tokens": 1, "logprobs": False}
    body.pop("top_logprobs", None)
    body.pop("structured_outputs", None)
    resp = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=300)
    assert resp.status_code == 200, resp.text
    return resp.json()["usage"]["prompt_tokens"]


async def test_omni_reward_manager_forwards_the_prompt_image_to_a_real_vl_genrm(
    vl_server, tiny_vl_model, tiny_text_model, real_media, tmp_path
):
    from verl.trainer.ppo.reward import load_reward_manager

    names = ("1.jpg", "3.jpg")
    images = [Image.open(real_media / n).convert("RGB") for n in names]
    with RecordingProxy(upstream=vl_server.base_url.removesuffix("/v1")) as proxy:
        kwargs = {"base_url": proxy.base_url, "model": vl_server.served_model_name, "max_tokens": 48,
                  "extra_body": {"structured_outputs": {"regex": PAIR_REGEX}}}  # fmt: skip
        tok = AutoTokenizer.from_pretrained(tiny_text_model)
        manager = load_reward_manager(_config(tiny_text_model, kwargs), tok)
        assert type(manager).__name__ == "OmniRewardManager"
        batch = _batch(tok, images)
        outs = [await manager.run_single(batch[i : i + 1]) for i in range(len(images))]
        reqs = proxy.chat_requests()

    scores = [o["reward_score"] for o in outs]
    assert all(o["reward_extra_info"]["judge_failed"] == 0.0 for o in outs)
    assert all(o["reward_extra_info"]["parse_failed"] == 0.0 for o in outs)
    assert all(0.0 < s < 1.0 for s in scores)  # soft verdicts from the judge's logprobs
    assert abs(scores[0] - scores[1]) > 1e-6, scores  # only the prompt image differs between the two samples
    assert len(reqs) == 4  # 2 samples x 2 orders (swap-debiased)

    # The image reached the model: prompt tokens with the image minus without = processor's image tokens + 2.
    files = []
    for name, im in zip(names, images, strict=True):  # what the manager sends: the PIL image re-encoded
        files.append(tmp_path / name)
        im.save(files[-1], format="JPEG", quality=90)
    want = dict(
        zip(names, expected_media_tokens_many(tiny_vl_model, [("image", f) for f in files]), strict=True)
    )
    sizes = {n: im.size for n, im in zip(names, images, strict=True)}
    for req in reqs:
        user = next(m for m in req.body["messages"] if m["role"] == "user")
        parts = user["content"]
        (img,) = [p for p in parts if p["type"] == "image_url"]
        import base64
        import io

        sent = Image.open(io.BytesIO(base64.b64decode(img["image_url"]["url"].split(",", 1)[1])))
        (name,) = [n for n, s in sizes.items() if s == sent.size]
        text_only = {**req.body, "messages": [m if m is not user else {**m, "content": [
            p for p in parts if p["type"] != "image_url"]} for m in req.body["messages"]]}  # fmt: skip
        assert _prompt_tokens(vl_server, req.body) - _prompt_tokens(vl_server, text_only) == want[name] + 2
    assert json.dumps(reqs[0].body).count("Be faithful to the image.") == 1
