"""Append-only jsonl cache of judgments so a killed eval resumes without duplicates or losses.

One line per judgment, written with a single `os.write` on an O_APPEND descriptor as soon as it is
known. A kill can at worst leave one torn last line; `load` cuts it off (and counts it) before
anything new is appended. Lines are keyed by (judge, benchmark, item, order, sample); a repeated key
with the same item content keeps the first line and is counted, never double-counted in metrics. A
line whose `item_hash` differs from the line before it is a re-judgment of a changed item: the later
line supersedes the earlier one (the runner appends it when the benchmark row changed).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from omni_rl.eval.records import CacheKey, Record


class CacheError(RuntimeError):
    """The cache file is damaged somewhere other than its last line (not a kill): the user must look."""


@dataclass
class LoadStats:
    """What `load` found, reported so a resume is auditable."""

    lines: int = 0
    records: int = 0
    duplicates: int = 0
    superseded: int = 0
    torn_tail_bytes: int = 0


class ResultCache:
    """The jsonl file plus an in-memory index of its keys."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[CacheKey, Record] = {}
        self.load_stats = LoadStats()
        self._fd: int | None = None

    def load(self) -> LoadStats:
        """Read every complete line; truncate a torn last line left by a kill."""
        self.records.clear()
        stats = LoadStats()
        if not self.path.exists():
            self.load_stats = stats
            return stats
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline; else a line a kill cut short
        for i, line in enumerate(lines, 1):
            try:
                self._add(Record.from_json(json.loads(line)), stats)
            except (ValueError, TypeError) as exc:
                raise CacheError(
                    f"{self.path}: line {i} is not a judgment record ({exc}); "
                    "the file was edited or is not an eval cache — move it away to start fresh"
                ) from exc
        if tail:
            try:
                self._add(Record.from_json(json.loads(tail)), stats)
                with open(self.path, "ab") as f:  # finish the line so the next append starts fresh
                    f.write(b"\n")
            except (ValueError, TypeError):
                stats.torn_tail_bytes = len(tail)
                os.truncate(self.path, len(data) - len(tail))
        stats.records = len(self.records)
        self.load_stats = stats
        return stats

    def _add(self, rec: Record, stats: LoadStats) -> None:
        """Index one loaded record; a repeated key keeps the first unless the item changed (then the newer)."""
        stats.lines += 1
        old = self.records.get(rec.key)
        if old is None:
            self.records[rec.key] = rec
        elif old.item_hash != rec.item_hash:
            stats.superseded += 1
            self.records[rec.key] = rec
        else:
            stats.duplicates += 1

    def __contains__(self, key: CacheKey) -> bool:
        return key in self.records

    def get(self, key: CacheKey) -> Record | None:
        """The cached judgment for a key, if any."""
        return self.records.get(key)

    def append(self, rec: Record) -> bool:
        """Persist one judgment immediately; False (nothing written) for a known key with the same item content."""
        old = self.records.get(rec.key)
        if old is not None and old.item_hash == rec.item_hash:
            return False
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        line = (json.dumps(rec.to_json(), ensure_ascii=False) + "\n").encode()
        view = memoryview(line)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.records[rec.key] = rec
        return True

    def select(self, judge: str, benchmark: str) -> list[Record]:
        """The records of one judge on one benchmark (a cache file may hold several runs)."""
        return [r for r in self.records.values() if r.judge == judge and r.benchmark == benchmark]

    def close(self) -> None:
        """Close the append descriptor (safe to call twice)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ResultCache:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
