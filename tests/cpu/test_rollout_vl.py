"""The `hf_cpu` rollout on the tiny Qwen2.5-VL: real images and real video frames from the fixtures reach
HF generate as vision features, and they change what the model computes (not just the prompt text).

Media are extracted exactly as verl's agent loop does it (`RLHFDataset._process_multi_modal_info`, i.e.
qwen_vl_utils) and the prompt ids are the processor's expanded placeholder runs, as verl's token builder
makes them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.utils.tokenizer.tokenizer import build_multimodal_processor_inputs

from omni_rl.cpu.rollout import HFGenerateServer
from omni_rl.data.video import extract_frames

GREEDY = {"temperature": 0.0, "logprobs": True, "max_tokens": 6, "ignore_eos": True}


def _configs(model: Path) -> tuple:
    rollout = OmegaConf.create(
        {
            "_target_": "verl.workers.config.RolloutConfig",
            "name": "hf_cpu",
            "prompt_length": 1024,
            "response_length": 8,
        }
    )
    return rollout, OmegaConf.create({"_target_": "verl.workers.config.HFModelConfig", "path": str(model)})


@pytest.fixture(scope="module")
def vl_server(tiny_vl_model: Path) -> HFGenerateServer:
    """The Ray actor's class, called in-process on the tiny VL model."""
    return HFGenerateServer(*_configs(tiny_vl_model), replica_rank=0)


def _request(server: HFGenerateServer, part: dict[str, Any]) -> tuple[list[int], dict[str, Any]]:
    """(prompt ids with expanded placeholders, media as verl hands them to `generate`) for one media part."""
    messages = [{"role": "user", "content": [part, {"type": "text", "text": "Which response is better?"}]}]
    images, videos, _ = RLHFDataset._process_multi_modal_info(messages, image_patch_size=14, config=None)
    proc = server.processor
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    out = build_multimodal_processor_inputs(proc, text=[text], images=images, videos=videos)
    return out["input_ids"][0].tolist(), {"image_data": images, "video_data": videos}


def _teacher_forced(
    server: HFGenerateServer, prompt: list[int], media: dict, tokens: list[int]
) -> torch.Tensor:
    """Log-probs of `tokens` after `prompt` in one forward with the prompt's vision features."""
    feats = server.media_inputs(prompt, {"images": media["image_data"], "videos": media["video_data"]})
    ids = torch.tensor([prompt + tokens])
    if "mm_token_type_ids" in feats:
        pad = torch.zeros((1, len(tokens)), dtype=torch.long)
        feats["mm_token_type_ids"] = torch.cat([feats["mm_token_type_ids"], pad], dim=1)
    with torch.no_grad():
        logits = server.model(input_ids=ids, **feats).logits[0, len(prompt) - 1 : -1]
    return torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(tokens)[:, None])[:, 0]


def _generate(server: HFGenerateServer, prompt: list[int], media: dict, rid: str):
    return asyncio.run(server.generate(prompt, dict(GREEDY), request_id=rid, **media))


def test_image_features_reach_generate_and_change_logprobs(
    vl_server: HFGenerateServer, real_media: Path
) -> None:
    """A real JPEG becomes pixel_values/image_grid_thw whose token count matches the prompt's image pads;
    generate's logprobs are those of a forward *with* that image, and a different image changes them."""
    pad = vl_server.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    prompt1, media1 = _request(vl_server, {"type": "image", "image": str(real_media / "1.jpg")})
    prompt2, media2 = _request(vl_server, {"type": "image", "image": str(real_media / "2.jpg")})
    before = vl_server.stats()["media_requests"]
    out = _generate(vl_server, prompt1, media1, "img-1")
    seen = vl_server.stats()
    assert seen["media_requests"] == before + 1
    info = seen["last_media_inputs"]
    (t, h, w) = info["image_grid_thw"][0]
    assert info["shapes"]["pixel_values"][0] == t * h * w  # one row per 14x14 patch
    assert prompt1.count(pad) == t * h * w // 4 > 0  # 2x2 merged patches = the prompt's image tokens
    with_img1 = _teacher_forced(vl_server, prompt1, media1, out.token_ids)
    assert torch.allclose(torch.tensor(out.log_probs), with_img1, atol=1e-4)
    with_img2 = _teacher_forced(vl_server, prompt2, media2, out.token_ids)
    # the sequence's log-perplexity moves by ~0.25 here; the rollout-vs-actor gap in training is ~1e-6
    assert abs(with_img1.mean() - with_img2.mean()) > 1e-2, "a different image left the logprobs unchanged"


def test_video_frames_reach_generate(vl_server: HFGenerateServer, real_media: Path, tmp_path: Path) -> None:
    """Frames of a real MP4 (exported as `omni-rl data prepare video_frames=4` does) become video features."""
    frames = extract_frames(str(real_media / "1.mp4"), 4, tmp_path)
    prompt, media = _request(vl_server, {"type": "video", "video": frames})
    assert media["video_data"] and not media["image_data"]
    out = _generate(vl_server, prompt, media, "vid-1")
    info = vl_server.stats()["last_media_inputs"]
    (t, h, w) = info["video_grid_thw"][0]
    assert t == 2 and info["shapes"]["pixel_values_videos"][0] == t * h * w  # 4 frames / temporal patch 2
    pad = vl_server.processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert prompt.count(pad) == t * h * w // 4
    assert torch.allclose(
        torch.tensor(out.log_probs), _teacher_forced(vl_server, prompt, media, out.token_ids), atol=1e-4
    )


def test_audio_to_vl_model_is_a_clear_error(vl_server: HFGenerateServer) -> None:
    with pytest.raises(NotImplementedError, match="no audio feature extractor"):
        asyncio.run(vl_server.generate([1, 2], dict(GREEDY), request_id="aud-1", audio_data=[[0.0] * 160]))


def test_media_placeholders_are_never_sampled(vl_server: HFGenerateServer, real_media: Path) -> None:
    """A response holding <|image_pad|> has no image behind it (verl's M-RoPE positions then fail and the
    sample is dropped): even a model that strongly prefers it never emits it; logprobs stay the raw ones."""
    tok = vl_server.processor.tokenizer
    pads = [tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>")]
    prompt, media = _request(vl_server, {"type": "image", "image": str(real_media / "3.jpg")})

    def boost(_module: Any, _inputs: Any, logits: torch.Tensor) -> torch.Tensor:
        logits[..., pads] += 100.0
        return logits

    handle = vl_server.model.lm_head.register_forward_hook(boost)
    try:
        out = _generate(vl_server, prompt, media, "pad-1")
    finally:
        handle.remove()
    assert not set(out.token_ids) & set(pads)
    assert max(out.log_probs) < -50  # the unsampled pads hold almost all of the raw probability mass
