"""GenAI-Bench-Video: `prompt, video_left, video_right, vote_type` (left/right/tie/bothbad votes), task t2v."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from omni_rl.data.loaders.base import Loader, need, register, text_field
from omni_rl.data.schema import DataError, Media, PreferencePair, Response

_VOTES = {"left": "left", "right": "right", "tie": "tie", "bothbad": "bothbad"}


def normalise_vote(value: Any, rid: str) -> str:
    """`leftvote`, `left_vote`, `Left` ... -> left|right|tie|bothbad."""
    v = str(value).strip().lower().replace("_", "").replace("-", "")
    v = v.removesuffix("vote")
    if v not in _VOTES:
        raise DataError(rid, "vote_type", f"{value!r} not in leftvote/rightvote/tievote/bothbad_vote")
    return _VOTES[v]


@register
class GenAIBenchVideoLoader(Loader):
    """Text-to-video pairs; `bothbad` votes become ties (option bothbad=tie) or rejects (bothbad=drop)."""

    name = "genai_bench_video"
    description = "GenAI-Bench-Video (prompt, video_left, video_right, vote_type)"
    OPTIONS: ClassVar[dict[str, str]] = {
        "bothbad": "tie: both-bad votes kept (scored per the eval protocol) | drop: to rejects"
    }
    OPTION_CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"bothbad": ("tie", "drop")}

    def convert(self, row: dict[str, Any], index: int) -> Iterable[PreferencePair]:
        """Left/right become chosen/rejected; the source side is kept only in meta."""
        rid = self.row_id(row, index)
        vote = normalise_vote(need(row, "vote_type", rid), rid)
        if vote == "bothbad" and self.option_choice("bothbad", ("tie", "drop"), "tie") == "drop":
            raise DataError(rid, "vote_type", "bothbad vote dropped (option bothbad=drop)")
        left = self.ctx.media(rid, "video_left", need(row, "video_left", rid))
        right = self.ctx.media(rid, "video_right", need(row, "video_right", rid))
        chosen, rejected = (right, left) if vote == "right" else (left, right)
        yield PreferencePair(
            id=rid,
            task="t2v",
            prompt=text_field(row, "prompt", rid),
            prompt_media=Media(),
            chosen=Response(media=Media(videos=chosen)),
            rejected=Response(media=Media(videos=rejected)),
            tie=vote in ("tie", "bothbad"),
            source=self.options.get("source_name", self.name),
            subset=str(row.get("subset") or ""),
            meta={"vote": vote, "source_first_is_chosen": vote != "right"},
        )
