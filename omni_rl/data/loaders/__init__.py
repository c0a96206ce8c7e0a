"""Loaders for public preference datasets, registered by name; `iter_records` streams pairs and rejects."""

from __future__ import annotations

import json
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
    preference_pairs,
    r1_reward,
    sharegpt_ranking,
    vl_rewardbench,
)
from omni_rl.data.loaders.base import (
    REGISTRY,
    FileError,
    LoadContext,
    Loader,
    LoaderOptionError,
    Reject,
    check_file,
    get_loader,
    register,
)
from omni_rl.data.schema import DataError, PreferencePair, validate

__all__ = [
    "REGISTRY",
    "FileError",
    "LoadContext",
    "Loader",
    "LoaderOptionError",
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
    facts: dict[str, Any] | None = None,
    **options: Any,
) -> Iterator[PreferencePair | Reject]:
    """Stream validated pairs, and a Reject (with reason) for every row that could not be used.

    File-level problems (missing file, a folder, wrong extension, unreadable json) raise
    `FileError`; `facts`, when given, is filled with the loader's file-level facts at the end (or
    when the caller stops early, in which case whole-file checks do not run).
    """
    path = Path(path)
    cls = get_loader(name)
    check_file(path, allow_dir=cls.accepts_dir)
    root = Path(media_root) if media_root is not None else cls.default_media_root(path)
    ctx = LoadContext(
        source=name,
        path=path,
        media_root=root,
        cache_dir=Path(cache_dir) if cache_dir else None,
        options=options,
    )
    loader = cls(ctx)
    try:
        for index, row in enumerate(_rows(loader, path)):
            loader.rows_read += 1
            yield from _convert(loader, name, path, index, row, check_files)
        loader.finish()
    finally:
        if facts is not None:
            facts.update(loader.facts())


def _rows(loader: Loader, path: Path) -> Iterator[Any]:
    """The loader's raw rows; a file that cannot be parsed at all becomes a FileError naming it."""
    try:
        yield from loader.read()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FileError(
            path, f"is not valid {path.suffix.lstrip('.')} ({e}); re-download or fix the file"
        ) from e
    except OSError as e:
        raise FileError(path, f"cannot be read ({e})") from e
    except Exception as e:
        if type(e).__module__.startswith("pyarrow"):
            raise FileError(path, f"is not a readable parquet file ({e}); re-download it") from e
        raise


def _convert(
    loader: Loader, name: str, path: Path, index: int, row: Any, check_files: bool
) -> Iterator[PreferencePair | Reject]:
    """One raw row → validated pairs, or Rejects naming the row and field."""
    if isinstance(row, DataError):
        yield Reject(name, str(path), row.row, row.field, row.message)
        return
    if not isinstance(row, dict):
        yield Reject(name, str(path), index, "<row>", f"expected an object, got {type(row).__name__}")
        return
    try:
        pairs = list(loader.convert(row, index))
    except DataError as e:
        yield Reject(name, str(path), e.row if e.row is not None else index, e.field, e.message, row)
        return
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        yield Reject(name, str(path), index, "<row>", f"malformed row: {type(e).__name__}: {e}", row)
        return
    for pair in pairs:
        try:
            yield validate(pair, check_files=check_files)
        except DataError as e:
            yield Reject(name, str(path), e.row, e.field, e.message, row)


def load_pairs(name: str, path: str | Path, **kwargs: Any) -> tuple[list[PreferencePair], list[Reject]]:
    """Eager convenience for small files and tests: (pairs, rejects)."""
    pairs: list[PreferencePair] = []
    rejects: list[Reject] = []
    for rec in iter_records(name, path, **kwargs):
        (rejects if isinstance(rec, Reject) else pairs).append(rec)  # type: ignore[arg-type]
    return pairs, rejects
