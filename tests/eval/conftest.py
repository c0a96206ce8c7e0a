"""Eval test helpers: real fixture media linked at the relative paths benchmark rows reference."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest


@pytest.fixture
def stand_in(tmp_path: Path, real_media: Path) -> Callable[[Iterable[str]], Path]:
    """Symlink a real jpg (or mp4 for video extensions) at each relative path under a fresh media_root."""
    root = tmp_path / "media_root"

    def make(rel_paths: Iterable[str]) -> Path:
        root.mkdir(exist_ok=True)
        for rel in sorted(set(rel_paths)):
            target = root / rel
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                video = rel.lower().endswith((".mp4", ".webm", ".mov"))
                target.symlink_to(real_media / ("1.mp4" if video else "1.jpg"))
        return root

    return make
