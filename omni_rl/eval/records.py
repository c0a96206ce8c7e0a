"""One judged unit (judge x benchmark x item x order x sample): the row the cache stores and metrics read."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

Order = Literal["AB", "BA"]  # AB = PreferencePair.ordered(swap=False): chosen (or first of a tie) in A
Pref = Literal["chosen", "rejected", "tie"]
CacheKey = tuple[str, str, str, str, int]


def order_of(swapped: bool) -> Order:
    """The cache's order tag for a layout."""
    return "BA" if swapped else "AB"


@dataclass(frozen=True)
class Record:
    """A judgment as stored: enough to recompute every metric without re-judging."""

    judge: str
    benchmark: str
    item: str
    order: Order
    sample: int
    task: str = ""
    subset: str = ""
    group: str | None = None
    label: str = "A"  # the right answer in the presented layout: A | B | tie
    verdict: str | None = None  # A | B | tie, or None = no verdict (parse failure / bad score)
    format_ok: bool = False
    score_a: float | None = None  # pointwise judges only
    score_b: float | None = None
    text: str = ""  # judge output, truncated, for audits
    latency_s: float = 0.0
    item_hash: str = ""  # content hash of the pair when judged: a changed item is re-judged, never reused
    judge_fp: str = ""  # judge fingerprint (model id, endpoint, sampling, weights): a changed judge is caught
    vote: str | None = None  # the source's own class when finer than A/B/tie (GenAI-Bench: tie vs bothbad)

    @property
    def key(self) -> CacheKey:
        """Identity in the resumable cache."""
        return (self.judge, self.benchmark, self.item, self.order, self.sample)

    @property
    def swapped(self) -> bool:
        """True when the rejected (or second tie) response was shown as A."""
        return self.order == "BA"

    @property
    def is_tie(self) -> bool:
        """The human label is a tie."""
        return self.label == "tie"

    @property
    def failed(self) -> bool:
        """No verdict could be read: counted as a failure and as wrong, never mapped to a side."""
        return self.verdict is None

    @property
    def correct(self) -> bool:
        """Three-way exact match (a missing verdict is wrong)."""
        return self.verdict is not None and self.verdict == self.label

    @property
    def pref(self) -> Pref | None:
        """The verdict in order-free terms, so both layouts of one pair can be compared."""
        if self.verdict is None:
            return None
        if self.verdict == "tie":
            return "tie"
        first = self.verdict == "A"
        return "chosen" if first != self.swapped else "rejected"

    @property
    def true_pref(self) -> Pref:
        """The label in order-free terms."""
        return "tie" if self.is_tie else "chosen"

    @property
    def margin(self) -> float | None:
        """score_a - score_b for pointwise judges (None when unscored or not finite)."""
        if self.score_a is None or self.score_b is None:
            return None
        m = float(self.score_a) - float(self.score_b)
        return m if math.isfinite(m) else None

    def to_json(self) -> dict[str, Any]:
        """Plain dict for one jsonl line (every field is a scalar: no deep copy as `asdict` would do)."""
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Record:
        """Inverse of to_json; unknown keys are an error so a foreign file is not silently misread."""
        extra = set(d) - _FIELD_SET
        if extra:
            raise ValueError(f"unknown record field(s) {sorted(extra)}")
        return cls(**d)


def verdict_from_scores(score_a: float | None, score_b: float | None, eps: float = 0.0) -> str | None:
    """Pointwise scores → a verdict: a tie when |a - b| <= eps; None when a score is missing or NaN."""
    if score_a is None or score_b is None:
        return None
    d = float(score_a) - float(score_b)
    if not math.isfinite(d):
        return None
    if abs(d) <= eps:
        return "tie"
    return "A" if d > 0 else "B"


_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Record))
_FIELD_SET = frozenset(_FIELDS)
