"""R1-Reward training format: `message` (chat, may be a JSON string), `question`, `answer` (1|2).

The two candidates sit inside the user message text, after `[Response 1]`/`Response 1:` style markers;
the loader cuts them out so the pair is order-free like every other source. Images/videos come from
`{"type": "image"|"video", ...}` content parts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from omni_rl.data.loaders.base import Loader, need, register
from omni_rl.data.schema import DataError, Media, PreferencePair, Response

_MARK = r"\[?\s*(?:Response|Answer)\s*{k}\s*\]?\s*[:：]?"
_ANSWER_RE = re.compile(r"(?:<answer>\s*)?(?:Answer|Response)?\s*([12])\s*(?:</answer>)?", re.I)


def _messages(value: Any, rid: str) -> list[dict[str, Any]]:
    """The chat list, decoding a JSON string if needed."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise DataError(rid, "message", f"not valid JSON: {e}") from e
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        raise DataError(rid, "message", "expected a non-empty list of chat messages")
    return value


def _split_parts(msgs: list[dict[str, Any]]) -> tuple[str, list[Any], list[Any]]:
    """All user text joined, plus image and video references from content parts."""
    texts: list[str] = []
    images: list[Any] = []
    videos: list[Any] = []
    for m in msgs:
        if m.get("role", "user") != "user":
            continue
        content = m.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        for p in parts:
            kind = p.get("type") if isinstance(p, dict) else "text"
            if kind == "text":
                texts.append(p.get("text", "") if isinstance(p, dict) else str(p))
            elif kind in ("image", "image_url"):
                ref = p.get("image") or p.get("image_url")
                images.append(ref.get("url") if isinstance(ref, dict) else ref)
            elif kind in ("video", "video_url"):
                ref = p.get("video") or p.get("video_url")
                videos.append(ref.get("url") if isinstance(ref, dict) else ref)
    return "\n".join(texts), images, videos


def split_responses(text: str, rid: str) -> tuple[str, str, str]:
    """(text before the candidates, response 1, response 2) from marker-delimited text."""
    m1 = re.search(_MARK.format(k=1), text, re.I)
    m2 = re.search(_MARK.format(k=2), text, re.I)
    if not m1 or not m2 or m2.start() < m1.end():
        raise DataError(rid, "message", "could not find `Response 1` then `Response 2` markers")
    r1 = text[m1.end() : m2.start()].strip()
    rest = text[m2.end() :]
    cut = re.search(r"\n\s*\n\s*(?:\[|#|Please|Instruction|Output)", rest)
    r2 = (rest[: cut.start()] if cut else rest).strip()
    return text[: m1.start()].strip(), r1, r2


@register
class R1RewardLoader(Loader):
    """Pairs from R1-Reward's judge-formatted training rows (task from media: ti2t/tv2t/t2t)."""

    name = "r1_reward"
    description = "R1-Reward training format (message, question, answer 1|2)"

    def convert(self, row: dict[str, Any], index: int) -> Iterable[PreferencePair]:
        """The human question is `question` when present, else the text before the candidates."""
        rid = self.row_id(row, index)
        text, img_refs, vid_refs = _split_parts(_messages(need(row, "message", rid), rid))
        head, r1, r2 = split_responses(text, rid)
        m = _ANSWER_RE.fullmatch(str(need(row, "answer", rid)).strip())
        if not m:
            raise DataError(rid, "answer", f"{row.get('answer')!r} is not 1 or 2")
        chosen, rejected = (r1, r2) if m.group(1) == "1" else (r2, r1)
        media = Media(
            images=self.ctx.media(rid, "message.image", img_refs),
            videos=self.ctx.media(rid, "message.video", vid_refs),
        )
        question = row.get("question") if isinstance(row.get("question"), str) else None
        yield PreferencePair(
            id=rid,
            task="tv2t" if media.videos else "ti2t" if media.images else "t2t",
            prompt=(question or head).strip(),
            prompt_media=media,
            chosen=Response(chosen),
            rejected=Response(rejected),
            source=self.options.get("source_name", self.name),
            subset=str(row.get("subset") or ""),
            meta={"source_first_is_chosen": m.group(1) == "1"},
        )
