"""Placeholders + real media → OpenAI content parts, with limits; payload proven on a real loopback server."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from omni_rl.data.schema import Media
from omni_rl.judge.client import JudgeClient
from omni_rl.judge.media import (
    MediaError,
    MediaLimits,
    extract_raw_prompt,
    raw_prompt_to_openai,
    to_openai_messages,
)
from omni_rl.testing.proxy import RecordingProxy


def _decode(url: str) -> bytes:
    assert url.startswith("data:")
    return base64.b64decode(url.split(",", 1)[1])


def test_placeholders_become_parts_in_order(real_media) -> None:
    media = Media(
        images=[str(real_media / "2.jpg"), str(real_media / "3.jpg")], videos=[str(real_media / "1.mp4")]
    )
    msgs = [
        {"role": "system", "content": "judge"},
        {"role": "user", "content": "<image> first, <video> clip, then <image>."},
    ]
    out = to_openai_messages(msgs, media, MediaLimits(max_image_side=None))
    assert out[0] == msgs[0]
    kinds = [p["type"] for p in out[1]["content"]]
    assert kinds == ["image_url", "text", "video_url", "text", "image_url", "text"]
    parts = out[1]["content"]
    assert _decode(parts[0]["image_url"]["url"]) == (real_media / "2.jpg").read_bytes()
    assert _decode(parts[4]["image_url"]["url"]) == (real_media / "3.jpg").read_bytes()
    assert _decode(parts[2]["video_url"]["url"]) == (real_media / "1.mp4").read_bytes()
    assert parts[2]["video_url"]["url"].startswith("data:video/mp4;base64,")


def test_large_images_are_downscaled(real_media) -> None:
    out = to_openai_messages([{"role": "user", "content": "<image>"}], Media(images=[str(real_media / "2.jpg")]),
                             MediaLimits(max_image_side=64))  # fmt: skip
    im = Image.open(io.BytesIO(_decode(out[0]["content"][0]["image_url"]["url"])))
    assert max(im.size) == 64


def test_limits_and_mismatches_fail_loudly(real_media) -> None:
    img = str(real_media / "1.jpg")
    with pytest.raises(MediaError, match="over the limit of 1"):
        to_openai_messages([{"role": "user", "content": "<image><image>"}], Media(images=[img, img]),
                           MediaLimits(max_images=1))  # fmt: skip
    with pytest.raises(MediaError, match="byte limit"):
        to_openai_messages([{"role": "user", "content": "<video>"}], Media(videos=[str(real_media / "1.mp4")]),
                           MediaLimits(max_video_bytes=1000))  # fmt: skip
    with pytest.raises(MediaError, match="more <image> placeholders"):
        to_openai_messages([{"role": "user", "content": "<image><image>"}], Media(images=[img]))
    with pytest.raises(MediaError, match="no placeholder"):
        to_openai_messages([{"role": "user", "content": "text only"}], Media(images=[img]))
    with pytest.raises(MediaError, match="not found"):
        to_openai_messages([{"role": "user", "content": "<image>"}], Media(images=["/nonexistent/x.jpg"]))
    with pytest.raises(MediaError, match="frames"):
        to_openai_messages([{"role": "user", "content": "<video>"}], Media(videos=[[img, img]]))


def test_verl_raw_prompt_form(real_media) -> None:
    pil = Image.open(real_media / "3.jpg").convert("RGB")
    raw = [
        {
            "role": "user",
            "content": [{"type": "image", "image": pil}, {"type": "text", "text": "What is it?"}],
        }
    ]
    out = raw_prompt_to_openai(raw)
    part = out[0]["content"][0]
    assert part["type"] == "image_url"
    assert Image.open(io.BytesIO(_decode(part["image_url"]["url"]))).size == pil.size
    text, media = extract_raw_prompt(raw)
    assert text == "<image>What is it?" and media["images"] == [pil]


@pytest.mark.server
async def test_multimodal_payload_reaches_a_real_http_server(real_media) -> None:
    """The bytes on the wire: the exact image files go out as data URIs, in placeholder order, unresized.
    (That the *model* sees them is proven against the real tiny VL server in tests/omni/test_media_seen.py.)"""
    paths = [real_media / "1.jpg", real_media / "2.jpg"]
    msgs = to_openai_messages(
        [{"role": "user", "content": "Compare <image> with <image>."}],
        Media(images=[str(p) for p in paths]),
        MediaLimits(max_image_side=None),
    )
    with RecordingProxy(upstream=None) as rec:
        client = JudgeClient(rec.base_url, "vl-judge")
        res = await client.chat(msgs, max_tokens=8)
        assert res.text == rec.fixed_reply
        (req,) = rec.chat_requests()
    parts = req.body["messages"][0]["content"]
    sent = [_decode(p["image_url"]["url"]) for p in parts if p["type"] == "image_url"]
    assert sent == [p.read_bytes() for p in paths]
    assert [Image.open(io.BytesIO(b)).size for b in sent] == [Image.open(p).size for p in paths]
