"""Loaders for public preference datasets, registered by name; `iter_records` streams pairs and rejects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omni_rl.data.loaders import (  # noqa: F401  (each module registers its loader)
    audio_hh_rlhf,
    genai_bench_video,
    hh_rlhf,
    mm_rlhf,
    multimodal_rewardbench,
    omni_rewardbench,
    r1_reward,
    sharegpt_ranking,
    vl_rewardbench,
)
from omni_rl.data.loaders.base import REGISTRY, LoadContext, Loader, Reject, get_loader, register
from omni_rl.data.schema import DataError, PreferencePair, validate

__all__ = [
    "REGISTRY",
    "LoadContext",
    "Loader",
    "Reject",
    "get_loader",
    "iter_records",
    "load_pairs",
    "register",
]


def iter_records(
    name: str,
    path: str | Path,
    media_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    check_files: bool = True,
    **options: Any,
) -> Iterator[PreferencePair | Reject]:
    """Stream validated pairs, and a Reject (with reason) for every row that could not be used."""
    path = Path(path)
    root = Path(media_root) if media_root is not None else path.parent
    ctx = LoadContext(
        source=name,
        path=path,
        media_root=root,
        cache_dir=Path(cache_dir) if cache_dir else None,
        options=options,
    )
    loader = get_loader(name)(ctx)
    for index, row in enumerate(loader.read()):
        if isinstance(row, DataError):
            yield Reject(name, str(path), row.row, row.field, row.message)
            continue
        if not isinstance(row, dict):
            yield Reject(name, str(path), index, "<row>", f"expected an object, got {type(row).__name__}")
            continue
        try:
            pairs = list(loader.convert(row, index))
        except DataError as e:
            yield Reject(name, str(path), e.row if e.row is not None else index, e.field, e.message, row)
            continue
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            yield Reject(name, str(path), index, "<row>", f"malformed row: {type(e).__name__}: {e}", row)
            continue
        for pair in pairs:
            try:
                yield validate(pair, check_files=check_files)
            except DataError as e:
                yield Reject(name, str(path), e.row, e.field, e.message, row)
    loader.finish()


def load_pairs(name: str, path: str | Path, **kwargs: Any) -> tuple[list[PreferencePair], list[Reject]]:
    """Eager convenience for small files and tests: (pairs, rejects)."""
    pairs: list[PreferencePair] = []
    rejects: list[Reject] = []
    for rec in iter_records(name, path, **kwargs):
        (rejects if isinstance(rec, Reject) else pairs).append(rec)  # type: ignore[arg-type]
    return pairs, rejects
