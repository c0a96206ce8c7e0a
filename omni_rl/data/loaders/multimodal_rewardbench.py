"""Multimodal RewardBench: `Category, ID, Text, Image, Output1, Output2, Better` (Better = Output1|Output2)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from omni_rl.data.loaders.base import Loader, need, register, text_field
from omni_rl.data.schema import DataError, Media, PreferencePair, Response


@register
class MultimodalRewardBenchLoader(Loader):
    """Image + text prompt pairs; subset = Category."""

    name = "multimodal_rewardbench"
    description = "Multimodal RewardBench (Category, ID, Text, Image, Output1, Output2, Better)"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._seen: Counter[str] = Counter()

    def convert(self, row: dict[str, Any], index: int) -> Iterable[PreferencePair]:
        """`Text` may be null when the question is in the image; the image is then required.

        The public file reuses an `ID` for different pairs of one prompt (187 ids in the reasoning
        split), so pair ids are `<ID>#<k>` and `group` keeps the source id.
        """
        group = str(need(row, "ID", index))
        rid = f"{group}#{self._seen[group]}"
        self._seen[group] += 1
        better = str(need(row, "Better", rid)).strip().lower()
        if better not in ("output1", "output2"):
            raise DataError(rid, "Better", f"{row.get('Better')!r} not in {{Output1, Output2}}")
        o1, o2 = text_field(row, "Output1", rid), text_field(row, "Output2", rid)
        chosen, rejected = (o1, o2) if better == "output1" else (o2, o1)
        images = self.ctx.media(rid, "Image", row.get("Image"))
        yield PreferencePair(
            id=rid,
            task="ti2t" if images else "t2t",
            prompt=text_field(row, "Text", rid, required=False),
            prompt_media=Media(images=images),
            chosen=Response(chosen),
            rejected=Response(rejected),
            source=self.options.get("source_name", self.name),
            subset=str(row.get("Category") or ""),
            group=group,
            meta={"source_first_is_chosen": better == "output1"},
        )
