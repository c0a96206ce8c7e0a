"""Omni-RewardBench as its public files are laid out: nine tasks, free-form criteria, labels response1|response2|tie.

Layout (HF `HongbangYuan/OmniRewardBench`): one folder per task holding `test.parquet`
(`text_to_image/test.parquet`, `text_to_video/test.parquet`, ...) and the media under `media_data/`.
`path` may be the benchmark folder (every task folder is read) or one task file; the task is derived
from the folder name (`text_image_to_text` → ti2t, `text_to_3d` → t23d; inputs before `_to_`, output
after), or the `task` option / column, or — for a loose file — inferred from the fields.

Fields: `id, prompt, criteria, criteria_preference, source, model1, model2` and the responses:
text-to-video rows carry the generated videos' paths in `response1`/`response2`; text-to-image and
text-to-audio use `response1_path`/`response2_path` (a list of renders for 3D). A `response{k}` value is
taken as a media path by its extension; in a task whose answers are text, a response that is only a
media file name is an error naming the row (a judge would otherwise compare file names).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from omni_rl.data.loaders.base import (
    SUFFIXES,
    FileError,
    Loader,
    check_task,
    read_records,
    register,
    text_field,
)
from omni_rl.data.schema import DataError, Media, PreferencePair, Response

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
VIDEO_EXT = {".mp4", ".webm", ".mov", ".avi", ".mkv", ".gif"}
AUDIO_EXT = {".wav", ".mp3", ".flac", ".ogg", ".m4a"}
MEDIA_EXT = IMAGE_EXT | VIDEO_EXT | AUDIO_EXT
_MODALITY = {"text": "t", "image": "i", "video": "v", "audio": "a", "3d": "3d"}
_OUTPUT_KIND = {"t2i": "images", "t2v": "videos", "t2a": "audios", "t23d": "images", "ti2i": "images"}
_TASK_FIELD = "__omni_task_folder"
_BARE_FILE = re.compile(r"^[^\s/\\]*(?:[/\\][^\s/\\]+)*\.[A-Za-z0-9]{2,5}$")


def task_from_folder(name: str) -> str | None:
    """`text_image_to_text` → ti2t, `text_to_3d` → t23d, `t2v` → t2v; None when the name is no task."""
    low = name.strip().lower().replace("-", "_")
    if "_to_" in low:
        inputs, _, output = low.partition("_to_")
        parts = inputs.split("_")
        if all(p in _MODALITY for p in parts) and output in _MODALITY:
            return "".join(_MODALITY[p] for p in parts) + "2" + _MODALITY[output]
        return None
    try:
        return check_task(low, None)
    except DataError:
        return None


def media_kind(paths: list[str], rid: str, fld: str) -> str:
    """images|videos|audios from the file extension (gif counts as an image)."""
    exts = {Path(p).suffix.lower() for p in paths}
    for kind, known in (("images", IMAGE_EXT), ("videos", VIDEO_EXT), ("audios", AUDIO_EXT)):
        if exts and exts <= known:
            return kind
    raise DataError(rid, fld, f"cannot tell media kind from extensions {sorted(exts)}")


def is_media_name(text: Any) -> bool:
    """True for a value that is only a media file name/path (no spaces, a known media extension)."""
    if isinstance(text, list | tuple):
        return bool(text) and all(is_media_name(t) for t in text)
    return (
        isinstance(text, str)
        and bool(_BARE_FILE.match(text.strip()))
        and Path(text.strip()).suffix.lower() in MEDIA_EXT
    )


def infer_task(row: dict[str, Any], resp_kind: str | None, n_views: int) -> str:
    """Task from which media fields a row carries (used when neither folder, option nor column says)."""
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
    """One loader for the whole benchmark folder, one task file, or a loose file of any task."""

    name = "omni_rewardbench"
    description = "Omni-RewardBench (benchmark folder of task folders, or one task file)"
    accepts_dir = True
    OPTIONS: ClassVar[dict[str, str]] = {
        "task": "task for every row (default: the task folder name, a task column, or the fields)"
    }

    @classmethod
    def default_media_root(cls, path: Path) -> Path:
        """`<benchmark>/media_data` (the public layout) when it exists, else the file's folder."""
        root = path if path.is_dir() else path.parent.parent
        return (
            root / "media_data"
            if (root / "media_data").is_dir()
            else (path if path.is_dir() else path.parent)
        )

    def task_files(self) -> list[tuple[Path, str | None]]:
        """(file, task from its folder) for a benchmark folder, or the one file given."""
        path = self.ctx.path
        if not path.is_dir():
            return [(path, task_from_folder(path.parent.name))]
        found = [
            (f, task)
            for d in sorted(p for p in path.iterdir() if p.is_dir())
            if (task := task_from_folder(d.name))
            for f in sorted(d.iterdir())
            if f.suffix.lower() in SUFFIXES
        ]
        if not found:
            raise FileError(
                path,
                "has no task folders (e.g. text_to_image/test.parquet); pass the benchmark folder or one task file",
            )
        return found

    def read(self) -> Iterator[dict[str, Any] | DataError]:
        """Rows of every task file, each tagged with its folder's task (ids get a `task/` prefix in a folder read)."""
        many = self.ctx.path.is_dir()
        for f, task in self.task_files():
            for row in read_records(f, lenient=True):
                if isinstance(row, dict):
                    row = {**row, _TASK_FIELD: (task, many)}
                yield row

    def _label(self, row: dict[str, Any], rid: str) -> str:
        """response1|response2|tie (also accepts 1/2/A/B)."""
        raw = row.get("criteria_preference", row.get("label"))
        v = str(raw).strip().lower()
        table = {"response1": "1", "1": "1", "a": "1", "response2": "2", "2": "2", "b": "2", "tie": "tie"}
        if v not in table:
            raise DataError(rid, "criteria_preference", f"{raw!r} not in {{response1, response2, tie}}")
        return table[v]

    def _response(self, row: dict[str, Any], k: int, rid: str, task: str | None) -> Response:
        """Text, or generated media from response{k}_path, or a media path in response{k} (T2V)."""
        text = row.get(f"response{k}")
        fld, value = f"response{k}_path", row.get(f"response{k}_path")
        if is_media_name(text):
            if task is not None and task not in _OUTPUT_KIND:
                raise DataError(
                    rid,
                    f"response{k}",
                    f"{text!r} is only a media file name, but task {task} answers in text",
                )
            if value not in (None, "", []):
                raise DataError(
                    rid, f"response{k}", f"both response{k} ({text!r}) and {fld} name media; keep one"
                )
            fld, value, text = f"response{k}", text, ""
        if text is not None and not isinstance(text, str):
            raise DataError(rid, f"response{k}", f"expected text, got {type(text).__name__}")
        paths = self.ctx.media(rid, fld, value)
        if not paths:
            return Response(text or "")
        return Response(text or "", Media(**{media_kind(paths, rid, fld): paths}))

    def convert(self, row: dict[str, Any], index: int) -> Iterable[PreferencePair]:
        """Criteria go in `criteria` (the judge template puts them in the system prompt)."""
        folder_task, many = row.pop(_TASK_FIELD, (None, False))
        rid = self.row_id(row, index)
        explicit = self.options.get("task") or row.get("task")
        task = check_task(explicit, rid, "task") if explicit else folder_task
        if many:
            rid = f"{folder_task}/{rid}"
        label = self._label(row, rid)
        r1, r2 = self._response(row, 1, rid, task), self._response(row, 2, rid, task)
        if task is None:
            kinds = [kind for kind, n in r1.media.count().items() if n]
            n_views = max(len(r1.media.images), len(r2.media.images))
            task = infer_task(row, kinds[0] if kinds else None, n_views)
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
            meta={
                **{k: row[k] for k in ("model1", "model2", "source") if row.get(k)},
                "source_first_is_chosen": label != "2",
            },
        )
