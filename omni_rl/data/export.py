"""Export preference pairs to the parquet verl 0.9.1's RLHFDataset reads unchanged, streaming in batches.

Each row is one judge prompt: `prompt` (chat list from a GenRM template), `images`/`videos`/`audios`
matching its placeholders, `data_source`, `reward_model.ground_truth` (the label after A/B ordering)
and `extra_info` (id, task, swapped, criteria, ...). The A/B order is decided here, never by the
source: a seeded shuffle balanced in blocks of two (exactly 50% A per split and task), or both orders.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from omni_rl.data.loaders.base import Reject
from omni_rl.data.schema import DataError, OrderedPair, PreferencePair
from omni_rl.data.stats import ExportStats

ORDERS = ("shuffle", "both")
TIE_MODES = ("keep", "drop", "map")


@dataclass
class ExportConfig:
    """How pairs become verl rows (all keys settable as `key=value` on the CLI)."""

    out_dir: str = "data/out"
    template: str = "pairwise_tie"  # omni_rl.prompts template name or path to a yaml
    order: str = "shuffle"  # shuffle: one seeded order per pair | both: swap augmentation (2 rows)
    seed: int = 0
    ties: str = "keep"  # keep: ground_truth "tie" | drop: to rejects | map: ground_truth = tie_label
    tie_label: str = "tie"
    val_fraction: float = 0.0  # deterministic split by hash of the pair's group (or id); seed-independent
    batch_size: int = 512
    video_frames: int = 0  # 0: keep video paths | N: decode N frames with PyAV (works without decord)
    frames_dir: str | None = None  # default <out_dir>/frames
    data_source: str | None = None  # default: the pair's `source`
    max_reject_fraction: float = 0.5  # fail loudly when more rows than this are rejected
    progress: bool = True


@dataclass
class ExportResult:
    """Where things were written and the stats dict."""

    files: dict[str, str]
    rejects_path: str
    stats_path: str
    stats: dict[str, Any] = field(default_factory=dict)


class RejectRateError(RuntimeError):
    """Too many rows rejected: likely a wrong media_root or loader, not bad rows."""


def split_of(pair: PreferencePair, val_fraction: float) -> str:
    """train|val from a hash of the group (or id): stable across runs, seeds, machines and input order."""
    if val_fraction <= 0:
        return "train"
    key = f"omni-rl-split:{pair.group or pair.id}".encode()
    bucket = int.from_bytes(hashlib.sha1(key).digest()[:8], "big") / 2**64
    return "val" if bucket < val_fraction else "train"


class BlockBalancer:
    """Seeded A/B swaps in blocks of two per (split, task): labels stay balanced to within one row."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._pending: dict[tuple[str, str], bool] = {}

    def swap(self, key: tuple[str, str]) -> bool:
        """First of a block: a fair coin; second: the opposite."""
        if key in self._pending:
            return not self._pending.pop(key)
        first = self._rng.random() < 0.5
        self._pending[key] = first
        return first


def parquet_schema(video_frames: int) -> pa.Schema:
    """Fixed schema so every batch (and every split) has the same column types."""
    video_t = pa.list_(pa.list_(pa.string())) if video_frames > 0 else pa.list_(pa.string())
    extra = pa.struct(
        [
            ("index", pa.int64()),
            ("id", pa.string()),
            ("group", pa.string()),
            ("task", pa.string()),
            ("source", pa.string()),
            ("subset", pa.string()),
            ("swapped", pa.bool_()),
            ("tie", pa.bool_()),
            ("label", pa.string()),
            ("criteria", pa.string()),
            ("split", pa.string()),
            ("template", pa.string()),
        ]
    )
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
            ("images", pa.list_(pa.string())),
            ("videos", video_t),
            ("audios", pa.list_(pa.string())),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            ("extra_info", extra),
        ]
    )


class _Writers:
    """One lazily opened ParquetWriter per split, writing to a temporary name until `commit` renames it.

    A run that fails (bad template, reject-rate guard, a crash) never leaves a partial `train.parquet`.
    """

    def __init__(self, out_dir: Path, schema: pa.Schema, batch_size: int, stack: ExitStack) -> None:
        self.out_dir, self.schema, self.batch_size, self.stack = out_dir, schema, batch_size, stack
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.buffers: dict[str, list[dict[str, Any]]] = {}

    def add(self, split: str, row: dict[str, Any]) -> None:
        """Buffer a row; write the split's batch when full."""
        buf = self.buffers.setdefault(split, [])
        buf.append(row)
        if len(buf) >= self.batch_size:
            self.flush(split)

    def flush(self, split: str) -> None:
        """Write buffered rows of a split as one row group."""
        buf = self.buffers.get(split)
        if not buf:
            return
        if split not in self.writers:
            path = self.tmp_path(split)
            self.writers[split] = self.stack.enter_context(pq.ParquetWriter(path, self.schema))
        self.writers[split].write_table(pa.Table.from_pylist(buf, schema=self.schema))
        buf.clear()

    def tmp_path(self, split: str) -> Path:
        """Where a split is written until the run succeeds."""
        return self.out_dir / f".{split}.parquet.{os.getpid()}.tmp"

    def close(self) -> dict[str, str]:
        """Flush everything (files stay under their temporary names); return split -> final path."""
        for split in list(self.buffers):
            self.flush(split)
        for w in self.writers.values():
            w.close()
        return {s: str(self.out_dir / f"{s}.parquet") for s in self.writers}

    def commit(self) -> None:
        """Rename every finished split to its final name (atomic per file)."""
        for split in self.writers:
            os.replace(self.tmp_path(split), self.out_dir / f"{split}.parquet")

    def discard(self) -> None:
        """Remove the temporary files of a failed run."""
        for split in self.writers:
            self.tmp_path(split).unlink(missing_ok=True)


class Exporter:
    """Turns a stream of pairs/rejects into verl parquet + rejects.jsonl + stats.json."""

    def __init__(self, cfg: ExportConfig) -> None:
        if cfg.order not in ORDERS:
            raise ValueError(f"order={cfg.order!r}: expected one of {ORDERS}")
        if cfg.ties not in TIE_MODES:
            raise ValueError(f"ties={cfg.ties!r}: expected one of {TIE_MODES}")
        if not 0 <= cfg.val_fraction < 1:
            raise ValueError(f"val_fraction={cfg.val_fraction}: expected 0 <= x < 1")
        self.cfg = cfg
        self.out_dir = Path(cfg.out_dir)
        self.frames_dir = Path(cfg.frames_dir) if cfg.frames_dir else self.out_dir / "frames"
        self.balancer = BlockBalancer(cfg.seed)
        self.stats = ExportStats()
        self._index = 0
        from omni_rl.prompts import load_template

        load_template(cfg.template)  # fail before reading data when the template is wrong

    def orders(self, pair: PreferencePair, split: str) -> list[OrderedPair]:
        """The A/B layouts to emit for a pair (ties: one seeded order, they carry no position label)."""
        if self.cfg.order == "both" and not pair.tie:
            return [pair.ordered(False), pair.ordered(True)]
        key = (split, "tie" if pair.tie else pair.task)
        return [pair.ordered(self.balancer.swap(key))]

    def _videos(self, videos: list[str], row: str) -> list[Any]:
        """Video paths, or frame lists when video_frames > 0."""
        if self.cfg.video_frames <= 0:
            return videos
        from omni_rl.data.video import extract_frames

        return [extract_frames(v, self.cfg.video_frames, self.frames_dir, row) for v in videos]

    def row(self, op: OrderedPair, split: str) -> dict[str, Any]:
        """One verl row for an ordered pair."""
        from omni_rl.prompts import render_judge_messages

        pair = op.pair
        jp = render_judge_messages(op, self.cfg.template)
        label = self.cfg.tie_label if (op.label == "tie" and self.cfg.ties == "map") else op.label
        self._index += 1
        return {
            "data_source": self.cfg.data_source or pair.source or "omni_rl",
            "prompt": jp.messages,
            "images": list(jp.media.images),
            "videos": self._videos(list(jp.media.videos), pair.id),
            "audios": list(jp.media.audios),
            "ability": "preference",
            "reward_model": {"style": "genrm", "ground_truth": label},
            "extra_info": {
                "index": self._index - 1,
                "id": pair.id,
                "group": pair.group,
                "task": pair.task,
                "source": pair.source,
                "subset": pair.subset,
                "swapped": op.swapped,
                "tie": pair.tie,
                "label": op.label,
                "criteria": pair.criteria,
                "split": split,
                "template": jp.template,
            },
        }

    def _reject(self, fh: Any, rej: Reject) -> None:
        """Count and write one reject."""
        fh.write(rej.to_json() + "\n")
        self.stats.add_reject(rej.reason, rej.field)

    def _handle_pair(self, pair: PreferencePair, writers: _Writers, rejects: Any) -> None:
        """Order, render and buffer one pair (or reject it with the reason)."""
        self.stats.pairs_in += 1
        if pair.tie and self.cfg.ties == "drop":
            self.stats.ties_dropped += 1
            self._reject(rejects, Reject(pair.source, "", pair.id, "tie", "tie dropped (ties=drop)"))
            return
        split = split_of(pair, self.cfg.val_fraction)
        try:
            rows = [self.row(op, split) for op in self.orders(pair, split)]
        except DataError as e:
            self._reject(rejects, Reject(pair.source, "", e.row, e.field, e.message, pair.to_dict()))
            return
        for r in rows:
            writers.add(split, r)
            counts = {k: len(r[k]) for k in ("images", "videos", "audios")}
            self.stats.add_row(split, pair.task, r["extra_info"]["label"], counts, pair.source)

    def run(self, records: Iterable[PreferencePair | Reject]) -> ExportResult:
        """Consume the stream; write parquet per split, rejects.jsonl and stats.json."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        rejects_path = self.out_dir / "rejects.jsonl"
        stats_path = self.out_dir / "stats.json"
        writers: _Writers | None = None
        try:
            with ExitStack() as stack:
                rejects = stack.enter_context(rejects_path.open("w", encoding="utf-8"))
                writers = _Writers(
                    self.out_dir, parquet_schema(self.cfg.video_frames), self.cfg.batch_size, stack
                )
                for rec in _progress(records, self.cfg.progress, stack):
                    if isinstance(rec, Reject):
                        self._reject(rejects, rec)
                    else:
                        self._handle_pair(rec, writers, rejects)
                files = writers.close()
            self.stats.save(stats_path)
            self._check_reject_rate(rejects_path)
            writers.commit()
        except BaseException:
            if writers is not None:
                writers.discard()
            raise
        return ExportResult(files, str(rejects_path), str(stats_path), self.stats.to_dict())

    def _check_reject_rate(self, rejects_path: Path) -> None:
        """Fail loudly when most rows were rejected: the rejects file says why."""
        bad = self.stats.n_rejects - self.stats.ties_dropped
        top = self.stats.rejects.most_common(1)[0][0] if self.stats.rejects else ""
        check_reject_rate(bad, bad + self.stats.pairs_in, self.cfg.max_reject_fraction, top, rejects_path)


def check_reject_rate(
    bad: int, total: int, max_fraction: float, top_reason: str, rejects_path: str | Path
) -> None:
    """The one reject-rate guard shared by `data prepare` and `eval`: more than max_fraction rejected fails."""
    if total and bad / total > max_fraction:
        raise RejectRateError(
            f"{bad}/{total} rows rejected (> max_reject_fraction={max_fraction}); "
            f"most common reason: {top_reason!r}. See {rejects_path} (check media_root and loader)."
        )


def _progress(records: Iterable[Any], enabled: bool, stack: ExitStack) -> Iterator[Any]:
    """A rich progress bar (count and rate; the total is unknown while streaming)."""
    if not enabled:
        yield from records
        return
    from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = stack.enter_context(
        Progress(
            SpinnerColumn(),
            TextColumn("exporting"),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        )
    )
    task = progress.add_task("export", total=None)
    for rec in records:
        yield rec
        progress.advance(task)


def export_pairs(records: Iterable[PreferencePair | Reject], cfg: ExportConfig) -> ExportResult:
    """Python API: stream pairs (and rejects from a loader) into verl parquet."""
    return Exporter(cfg).run(records)


def read_rejects(path: str | Path) -> list[dict[str, Any]]:
    """Load a rejects.jsonl (for tests and reports)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
