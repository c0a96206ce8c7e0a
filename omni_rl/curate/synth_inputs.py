"""Synth prompts: our plain prompts file or any preference loader's prompts, with media and criteria.

Reading is shared with best-of-N (`omni_rl.bon.rows.load_rows`): the same formats, the same
rejects (a bad row is written to the rejects file with its field, never dropped silently).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni_rl.bon.rows import load_rows
from omni_rl.data.loaders.base import Reject
from omni_rl.data.schema import PLACEHOLDERS, TASKS, Media, placeholder_counts


@dataclass
class SynthPrompt:
    """One prompt every candidate answers: text (with optional inline placeholders), media, criteria."""

    id: str
    task: str
    prompt: str
    media: Media = field(default_factory=Media)
    criteria: str | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def infer_task(media: Media, declared: Any = None) -> str:
    """The row's task if it names a known understanding task, else from the media it carries."""
    if isinstance(declared, str) and declared in TASKS:
        return declared
    return "ti2t" if media.images else "tv2t" if media.videos else "ta2t" if media.audios else "t2t"


def load_prompts(
    path: str, fmt: str, media_root: str | None, limit: int | None
) -> tuple[list[SynthPrompt], list[Reject]]:
    """Every usable prompt (ids unique) and the rejected rows."""
    if not Path(path).exists():
        raise SystemExit(f"synth: input file not found: {path}")
    rows, rejects = load_rows(path, fmt, media_root, limit)
    prompts = [
        SynthPrompt(
            id=r.id,
            task=infer_task(r.media, r.meta.get("task")),
            prompt=r.prompt,
            media=r.media,
            criteria=r.criteria,
            source=str(r.meta.get("source") or ("prompts" if fmt == "prompts" else fmt)),
            meta={k: v for k, v in r.meta.items() if k not in ("task", "source")},
        )
        for r in rows
    ]
    return prompts, rejects


def user_content(p: SynthPrompt) -> str:
    """The candidate's user turn: inline placeholders kept, one leading placeholder per other media item."""
    inline = placeholder_counts(p.prompt)
    lead = [PLACEHOLDERS[k] for k in PLACEHOLDERS if not inline[k] for _ in range(len(getattr(p.media, k)))]
    return "\n".join([*lead, p.prompt]) if lead else p.prompt
