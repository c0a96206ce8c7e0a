"""HH-RLHF-style text pairs: `text_prompt, answer_a, answer_b, label` where label 0 means answer_a won."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omni_rl.data.loaders.base import Loader, register, text_field
from omni_rl.data.schema import DataError, Media, PreferencePair, Response


@register
class HHRLHFLoader(Loader):
    """Text-only pairs (t2t)."""

    name = "hh_rlhf"
    description = "HH-RLHF-style text pairs (text_prompt, answer_a, answer_b, label 0=a)"

    def convert(self, row: dict[str, Any], index: int) -> Iterable[PreferencePair]:
        """Map label 0/1 to which answer is chosen."""
        rid = self.row_id(row, index)
        prompt = text_field(row, "text_prompt", rid)
        a, b = text_field(row, "answer_a", rid), text_field(row, "answer_b", rid)
        label = row.get("label")
        if label not in (0, 1, "0", "1") or isinstance(label, bool):
            raise DataError(rid, "label", f"label {label!r} not in {{0 (answer_a), 1 (answer_b)}}")
        a_wins = int(label) == 0
        chosen, rejected = (a, b) if a_wins else (b, a)
        yield PreferencePair(
            id=rid,
            task="t2t",
            prompt=prompt,
            prompt_media=Media(),
            chosen=Response(chosen),
            rejected=Response(rejected),
            source=self.options.get("source_name", self.name),
            subset=str(row.get("subset") or ""),
            meta={"source_first_is_chosen": a_wins},
        )
