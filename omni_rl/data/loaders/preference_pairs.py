"""Our own `PreferencePair.to_dict()` jsonl (written by `omni-rl synth`), read back for `data prepare`.

Media paths are relative to media_root (or absolute under it), like every other loader's; the
pair's `source`, `subset`, `group`, `criteria` and `meta` are kept as written.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omni_rl.data.loaders.base import Loader, check_task, need, register
from omni_rl.data.schema import DataError, Media, PreferencePair, Response


@register
class PreferencePairsLoader(Loader):
    """One `PreferencePair.to_dict()` object per row."""

    name = "preference_pairs"
    description = "omni-rl's own PreferencePair jsonl (e.g. `omni-rl synth` pairs.jsonl)"

    def _media(self, rid: str, fld: str, value: Any) -> Media:
        """A {images, videos, audios} dict resolved against media_root."""
        if value is None:
            return Media()
        if not isinstance(value, dict):
            raise DataError(rid, fld, "expected {images: [...], videos: [...], audios: [...]}")
        return Media(
            *(self.ctx.media(rid, f"{fld}.{k}", value.get(k)) for k in ("images", "videos", "audios"))
        )

    def _response(self, rid: str, fld: str, value: Any) -> Response:
        """A {text, media} response."""
        if not isinstance(value, dict):
            raise DataError(rid, fld, "expected {text: ..., media: {...}}")
        text = value.get("text") or ""
        if not isinstance(text, str):
            raise DataError(rid, f"{fld}.text", f"expected text, got {type(text).__name__}")
        return Response(text, self._media(rid, f"{fld}.media", value.get("media")))

    def convert(self, row: dict[str, Any], index: int) -> Iterable[PreferencePair]:
        """The row as written; media resolved, task checked."""
        rid = self.row_id(row, index)
        meta = row.get("meta") or {}
        if not isinstance(meta, dict):
            raise DataError(rid, "meta", "expected an object")
        prompt = row.get("prompt") or ""
        if not isinstance(prompt, str):
            raise DataError(rid, "prompt", f"expected text, got {type(prompt).__name__}")
        yield PreferencePair(
            id=rid,
            task=check_task(need(row, "task", rid), rid),
            prompt=prompt,
            prompt_media=self._media(rid, "prompt_media", row.get("prompt_media")),
            chosen=self._response(rid, "chosen", need(row, "chosen", rid)),
            rejected=self._response(rid, "rejected", need(row, "rejected", rid)),
            tie=bool(row.get("tie", False)),
            criteria=row.get("criteria"),
            source=self.options.get("source_name") or row.get("source") or self.name,
            subset=str(row.get("subset") or ""),
            group=row.get("group"),
            meta=dict(meta),
        )
