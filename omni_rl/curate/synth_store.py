"""Append-only keyed jsonl stores for the synth steps, so a killed run resumes with no duplicates.

Each finished call is one line written by a single `os.write` on an O_APPEND descriptor and fsync'ed,
as soon as its result is known. A kill leaves at worst one torn last line, which `load` cuts off
(and counts) before anything is appended. A key's first successful record is final and never redone;
a failed record is kept as history and, when `retry_failed` is set, the call is made again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class StoreError(RuntimeError):
    """A store line other than the last is not a record: the file was edited, not killed."""


@dataclass
class StoreLoad:
    """What `load` found, reported so a resume is auditable."""

    lines: int = 0
    ok: int = 0
    failed: int = 0  # keys whose latest record is a failure
    duplicates: int = 0  # extra successful lines for a key that already had one (kept: the first)
    torn_tail_bytes: int = 0


class StepStore:
    """One step's records, keyed by `record["key"]`; `record["ok"]` says whether the call succeeded."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        self.stats = StoreLoad()
        self._fd: int | None = None

    def load(self) -> StoreLoad:
        """Read every complete line; cut a torn last line left by a kill."""
        self.records.clear()
        self.stats = StoreLoad()
        if not self.path.exists():
            return self.stats
        data = self.path.read_bytes()
        good_end = 0
        for i, line in enumerate(data.splitlines(keepends=True), 1):
            try:
                rec = json.loads(line) if line.endswith(b"\n") else None
            except json.JSONDecodeError as exc:
                if good_end + len(line) < len(data):
                    raise StoreError(
                        f"{self.path}: line {i} is not json ({exc}); move the file away"
                    ) from exc
                rec = None
            if rec is None:
                break
            if not isinstance(rec, dict) or "key" not in rec:
                raise StoreError(f"{self.path}: line {i} has no 'key'; this is not a synth step store")
            self._index(rec)
            good_end += len(line)
        if good_end != len(data):
            self.stats.torn_tail_bytes = len(data) - good_end
            os.truncate(self.path, good_end)
        self.stats.ok = sum(1 for r in self.records.values() if r.get("ok"))
        self.stats.failed = len(self.records) - self.stats.ok
        return self.stats

    def _index(self, rec: dict[str, Any]) -> None:
        """First success wins; a later failure never replaces a success."""
        self.stats.lines += 1
        old = self.records.get(rec["key"])
        if old is not None and old.get("ok"):
            self.stats.duplicates += int(bool(rec.get("ok")))
            return
        self.records[rec["key"]] = rec

    def done(self, key: str, retry_failed: bool) -> dict[str, Any] | None:
        """The record that makes a call unnecessary: a success, or a failure when not retrying."""
        rec = self.records.get(key)
        if rec is None or (not rec.get("ok") and retry_failed):
            return None
        return rec

    def append(self, rec: dict[str, Any]) -> None:
        """Persist one record now (one write, then fsync) and index it."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        view = memoryview((json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n").encode())
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        self._index(rec)

    def close(self) -> None:
        """Close the append descriptor (safe to call twice)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
