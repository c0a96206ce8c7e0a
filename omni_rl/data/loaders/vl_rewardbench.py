"""VL-RewardBench in both public schemas, with subsets derived by the benchmark's own rule.

The benchmark's scoring script (`cal.py` in vl-rewardbench/VL_RewardBench) groups items by their
source dataset: POVID (ids `hallucination_pair-*`), RLAIF-V and RLHF-V are **hallucination**, the
reasoning tasks (MathVerse, MMMU-Pro) are **reasoning**, and **everything else is general**
(WildVision battles, VLFeedback with its LRVInstruction/... items, ...). So the loader names the
hallucination and reasoning sources and puts every other item in general; it never enumerates the
general sources. The source is read from `image_path` (`images/<source>/<file>`) when the row has one,
else from the id prefix (case-insensitive), and the two must agree.

Schemas:
- original (GitHub jsonl / HF parquet): `id, query, response[2], human_ranking[2], image_path | image`;
  lower rank is better, equal ranks are a tie; the source order (response[0] first) is recorded.
- R1-Reward's jsonl copy: `id, prompt, chosen, rejected, image, chosen_reason, rejected_reason`;
  it keeps no source order, so `order=source` is refused for it.

On the full file (1,250 rows) the subset sizes must be 183/749/318; otherwise a DataError names the
rows of each subset by source, so the disagreement can be found in the file.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from omni_rl.data.loaders.base import Loader, need, register, text_field
from omni_rl.data.schema import DataError, Media, PreferencePair, Response

FULL_SIZE = 1250
CANONICAL_COUNTS = {"general": 183, "hallucination": 749, "reasoning": 318}
# The named sources, as `image_path` folders (cal.py's group_mapping) and as id prefixes.
NAMED_FOLDERS: dict[str, str] = {
    "povid": "hallucination",
    "rlaif-v": "hallucination",
    "rlhf-v": "hallucination",
    "reasoning_tasks": "reasoning",
}
NAMED_ID_PREFIXES: dict[str, str] = {
    "hallucination_pair": "hallucination",  # POVID items
    "povid": "hallucination",
    "rlaif-v": "hallucination",
    "rlhf-v": "hallucination",
    "mathverse": "reasoning",
    "mmmu": "reasoning",  # mmmu_pro_*
}
_FOLDER_RE = re.compile(r"(?:^|/)images/([^/]+)/")
_SOURCE_RE = re.compile(r"^(.*?)[-_]?\d")


def subset_from_id(item_id: str) -> str:
    """hallucination / reasoning for ids of the named sources (any case), general for every other id."""
    low = item_id.lower()
    for prefix, subset in NAMED_ID_PREFIXES.items():
        if low.startswith(prefix):
            return subset
    return "general"


def subset_of(item_id: str, image_path: str | None = None) -> str:
    """The benchmark's rule: the source folder when the row names one, else the id; they must agree."""
    by_id = subset_from_id(item_id)
    m = _FOLDER_RE.search(image_path or "")
    if not m:
        return by_id
    by_folder = NAMED_FOLDERS.get(m.group(1).lower(), "general")
    if by_folder != by_id:
        raise DataError(
            item_id, "image_path",
            f"source folder {m.group(1)!r} means {by_folder} but the id means {by_id}; the row disagrees with itself",
        )  # fmt: skip
    return by_folder


def source_label(item_id: str) -> str:
    """A display name for an item's source (the id up to its first number), for error messages."""
    m = _SOURCE_RE.match(item_id)
    return (m.group(1) if m and m.group(1) else item_id).lower()


def parse_ranking(value: Any, rid: str) -> tuple[float, float]:
    """Two finite numeric ranks; NaN, inf, booleans or text are an error, never "second wins"."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise DataError(rid, "human_ranking", f"expected 2 ranks, got {value!r}")
    out = []
    for x in value:
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise DataError(rid, "human_ranking", f"rank {x!r} is not a number")
        if not math.isfinite(x):
            raise DataError(rid, "human_ranking", f"rank {x!r} is not finite")
        out.append(float(x))
    return out[0], out[1]


@register
class VLRewardBenchLoader(Loader):
    """Original schema (`response` + `human_ranking`) or R1-Reward's copy (`chosen`/`rejected`), per row."""

    name = "vl_rewardbench"
    description = "VL-RewardBench: original (id, query, response, human_ranking, image) or R1-Reward copy"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.subsets: Counter[str] = Counter()
        self.members: dict[str, list[str]] = defaultdict(list)
        self.schemas: Counter[str] = Counter()

    def convert(self, row: dict[str, Any], index: int) -> Iterable[PreferencePair]:
        """Subset first (so the whole-file tally counts rows that are later rejected), then the pair."""
        rid = str(need(row, "id", index))
        image_path = row.get("image_path") if isinstance(row.get("image_path"), str) else None
        subset = subset_of(rid, image_path)
        self.subsets[subset] += 1
        self.members[subset].append(rid)
        if "human_ranking" in row or "response" in row:
            self.schemas["original"] += 1
            yield self._original(row, rid, subset)
        elif "chosen" in row or "rejected" in row:
            self.schemas["r1_reward_copy"] += 1
            yield self._r1_copy(row, rid, subset)
        else:
            raise DataError(
                rid,
                "<row>",
                "neither `response`+`human_ranking` (original) nor `chosen`/`rejected` (R1-Reward copy)",
            )

    def _original(self, row: dict[str, Any], rid: str, subset: str) -> PreferencePair:
        """Chosen = the response with the lower human rank; the source order is kept in meta."""
        responses = need(row, "response", rid)
        if not isinstance(responses, list | tuple) or len(responses) != 2:
            raise DataError(rid, "response", "expected a list of exactly 2 responses")
        r0, r1 = parse_ranking(need(row, "human_ranking", rid), rid)
        for k, text in enumerate(responses):
            if not isinstance(text, str) or not text.strip():
                raise DataError(rid, f"response[{k}]", "missing or empty")
        first_wins = r0 <= r1
        chosen, rejected = (responses[0], responses[1]) if first_wins else (responses[1], responses[0])
        meta = {k: row[k] for k in ("models", "query_source", "ground_truth") if row.get(k) is not None}
        meta["source_first_is_chosen"] = first_wins
        return self._pair(row, rid, subset, text_field(row, "query", rid), chosen, rejected, r0 == r1, meta)

    def _r1_copy(self, row: dict[str, Any], rid: str, subset: str) -> PreferencePair:
        """R1-Reward's copy: chosen/rejected given directly; no source order to record."""
        meta = {k: row[k] for k in ("chosen_reason", "rejected_reason") if row.get(k)}
        chosen, rejected = text_field(row, "chosen", rid), text_field(row, "rejected", rid)
        return self._pair(row, rid, subset, text_field(row, "prompt", rid), chosen, rejected, False, meta)

    def _pair(self, row: dict[str, Any], rid: str, subset: str, prompt: str, chosen: str, rejected: str,
              tie: bool, meta: dict[str, Any]) -> PreferencePair:  # fmt: skip
        """The order-free pair; the image comes from `image` (path or HF bytes) or `image_path`."""
        fld = "image" if row.get("image") not in (None, "") else "image_path"
        images = self.ctx.media(rid, fld, row.get(fld))
        return PreferencePair(
            id=rid,
            task="ti2t" if images else "t2t",
            prompt=prompt,
            prompt_media=Media(images=images),
            chosen=Response(chosen),
            rejected=Response(rejected),
            tie=tie,
            source=self.options.get("source_name", self.name),
            subset=subset,
            meta=meta,
        )

    def facts(self) -> dict[str, Any]:
        """What the file showed: schema(s), subset sizes, and whether the full-file check ran."""
        full = self.rows_read == FULL_SIZE
        return {
            "rows": self.rows_read,
            "schemas": dict(self.schemas),
            "subset_counts": dict(self.subsets),
            "canonical_counts": CANONICAL_COUNTS,
            "subset_check": "passed"
            if full
            else f"not run: {self.rows_read} rows read, the full file has {FULL_SIZE}",
        }

    def finish(self) -> None:
        """On the full benchmark file the canonical subset sizes must come out exactly."""
        if self.rows_read != FULL_SIZE or dict(self.subsets) == CANONICAL_COUNTS:
            return
        parts, suspects = [], []
        for subset, want in CANONICAL_COUNTS.items():
            got = self.subsets.get(subset, 0)
            if got == want:
                continue
            by_source: dict[str, list[str]] = defaultdict(list)
            for rid in self.members.get(subset, []):
                by_source[source_label(rid)].append(rid)
            ranked = sorted(by_source.items(), key=lambda kv: len(kv[1]))
            suspects += [rid for _, ids in ranked if len(ids) <= 20 for rid in ids]  # rows of rare sources
            detail = "; ".join(f"{src} ×{len(ids)}: {', '.join(ids[:12])}{' …' if len(ids) > 12 else ''}"
                               for src, ids in ranked)  # fmt: skip
            parts.append(f"{subset} has {got} rows (canonical {want}); its rows by source: {detail}")
        raise DataError(
            suspects[:60],
            "id",
            f"{self.ctx.path}: VL-RewardBench subset counts {dict(self.subsets)} != canonical {CANONICAL_COUNTS} "
            "(hallucination = POVID/RLAIF-V/RLHF-V, reasoning = MathVerse/MMMU-Pro, general = every other source). "
            + " | ".join(parts),
        )
