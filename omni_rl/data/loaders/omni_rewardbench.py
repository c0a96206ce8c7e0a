"""Omni-RewardBench: nine tasks, free-form criteria, labels response1|response2|tie.

Fields: `prompt, response1, response2, criteria, criteria_preference` plus, by task, `image_path`,
`video`, `audio_path` (prompt media) or `response1_path`/`response2_path` (generated media; a list of
multi-view renders for 3D). The task comes from the `task` option, a `task` column, or the fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from omni_rl.data.loaders.base import Loader, check_task, register, text_field
from omni_rl.data.schema import TASKS, DataError, Media, PreferencePair, Response

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
VIDEO_EXT = {".mp4", ".webm", ".mov", ".avi", ".mkv", ".gif"}
AUDIO_EXT = {".wav", ".mp3", ".flac", ".ogg", ".m4a"}


def media_kind(paths: list[str], rid: str, fld: str) -> str:
    """images|videos|audios from the file extension (gif counts as an image)."""
    exts = {Path(p).suffix.lower() for p in paths}
    for kind, known in (("images", IMAGE_EXT), ("videos", VIDEO_EXT), ("audios", AUDIO_EXT)):
        if exts and exts <= known:
            return kind
    raise DataError(rid, fld, f"cannot tell media kind from extensions {sorted(exts)}")


def infer_task(row: dict[str, Any], resp_kind: str | None, n_views: int) -> str:
    """Task from which media fields a row carries (used when neither option nor column says)."""
    if resp_kind:
        if row.get("image_path"):
            return "ti2i"
        if resp_kind == "images":
            return "t23d" if n_views > 1 else "t2i"
        return {"videos": "t2v", "audios": "t2a"}[resp_kind]
    if row.get("image_path"):
        return "ti2t"
    if row.get("video") or row.get("video_path"):
        return "tv2t"
    if row.get("audio_path"):
        return "ta2t"
    return "t2t"


@register
class OmniRewardBenchLoader(Loader):
    """One loader for all nine Omni-RewardBench task files."""

    name = "omni_rewardbench"
    OPTIONS: ClassVar[dict[str, str]] = {
        "task": "task for every row (default: the task folder name, a task column, or the fields)"
    }
    description = "Omni-RewardBench (prompt, response1/2, criteria, criteria_preference, media paths)"

    def _label(self, row: dict[str, Any], rid: str) -> str:
        """response1|response2|tie (also accepts 1/2/A/B)."""
        raw = row.get("criteria_preference", row.get("label"))
        v = str(raw).strip().lower()
        table = {"response1": "1", "1": "1", "a": "1", "response2": "2", "2": "2", "b": "2", "tie": "tie"}
        if v not in table:
            raise DataError(rid, "criteria_preference", f"{raw!r} not in {{response1, response2, tie}}")
        return table[v]

    def _response(self, row: dict[str, Any], k: int, rid: str) -> Response:
        """Text response, or generated media from response{k}_path."""
        media_val = row.get(f"response{k}_path")
        paths = self.ctx.media(rid, f"response{k}_path", media_val)
        text = row.get(f"response{k}") or ""
        if not isinstance(text, str):
            raise DataError(rid, f"response{k}", f"expected text, got {type(text).__name__}")
        if not paths:
            return Response(text)
        kind = media_kind(paths, rid, f"response{k}_path")
        return Response(text, Media(**{kind: paths}))

    def convert(self, row: dict[str, Any], index: int) -> Iterable[PreferencePair]:
        """Criteria go in `criteria` (the judge template puts them in the system prompt)."""
        rid = self.row_id(row, index)
        label = self._label(row, rid)
        r1, r2 = self._response(row, 1, rid), self._response(row, 2, rid)
        resp_kinds = [k for k, v in r1.media.count().items() if v]
        task_opt = self.options.get("task") or row.get("task")
        if task_opt:
            task = check_task(task_opt, rid, "task")
        else:
            n_views = max(len(r1.media.images), len(r2.media.images))
            task = infer_task(row, resp_kinds[0] if resp_kinds else None, n_views)
        assert task in TASKS
        prompt_media = Media(
            images=self.ctx.media(rid, "image_path", row.get("image_path")),
            videos=self.ctx.media(rid, "video", row.get("video") or row.get("video_path")),
            audios=self.ctx.media(rid, "audio_path", row.get("audio_path")),
        )
        chosen, rejected = (r2, r1) if label == "2" else (r1, r2)
        criteria = row.get("criteria")
        yield PreferencePair(
            id=rid,
            task=task,
            prompt=text_field(row, "prompt", rid, required=prompt_media.is_empty()),
            prompt_media=prompt_media,
            chosen=chosen,
            rejected=rejected,
            tie=label == "tie",
            criteria=str(criteria) if criteria not in (None, "") else None,
            source=self.options.get("source_name", self.name),
            subset=task,
            meta={k: row[k] for k in ("model1", "model2") if row.get(k)},
        )
