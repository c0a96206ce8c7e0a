"""Audio-HH-RLHF (Omni-RRM's audio preference benchmark): `audio_prompt, answer_a, answer_b, label`.

The prompt is spoken: `audio_prompt` is an audio file (a path under media_root, or HF Audio
`{"bytes", "path"}`); the answers are text, so the task is ta2t. `label` "0" means answer_a was
preferred and "1" answer_b (ints are accepted too). A row whose audio file is missing is a counted
reject (schema.validate), unless the user turns file checks off (`check_files=false`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omni_rl.data.loaders.base import Loader, need, register, text_field
from omni_rl.data.schema import DataError, Media, PreferencePair, Response


def a_wins(label: Any, rid: str) -> bool:
    """True when answer_a is preferred: label "0"/0 → a, "1"/1 → b; anything else names the row."""
    if isinstance(label, bool) or str(label).strip() not in ("0", "1"):
        raise DataError(rid, "label", f'label {label!r} not in {{"0" (answer_a), "1" (answer_b)}}')
    return str(label).strip() == "0"


@register
class AudioHHRLHFLoader(Loader):
    """Spoken prompt + two text answers (ta2t); an optional `text_prompt` is kept as the prompt text."""

    name = "audio_hh_rlhf"
    description = 'Audio-HH-RLHF (audio_prompt, answer_a, answer_b, label "0"=answer_a)'

    def convert(self, row: dict[str, Any], index: int) -> Iterable[PreferencePair]:
        """Chosen = the answer the label names; the source order is recorded for order=source."""
        rid = self.row_id(row, index)
        audios = self.ctx.media(rid, "audio_prompt", need(row, "audio_prompt", rid))
        a, b = text_field(row, "answer_a", rid), text_field(row, "answer_b", rid)
        first = a_wins(row.get("label"), rid)
        chosen, rejected = (a, b) if first else (b, a)
        yield PreferencePair(
            id=rid,
            task="ta2t",
            prompt=text_field(row, "text_prompt", rid, required=False),
            prompt_media=Media(audios=audios),
            chosen=Response(chosen),
            rejected=Response(rejected),
            source=self.options.get("source_name", self.name),
            subset=str(row.get("subset") or ""),
            meta={"source_first_is_chosen": first},
        )
