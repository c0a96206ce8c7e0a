"""Agreement rules: two ordered teacher judgements of a presumed (chosen, rejected) pair → keep/flip/drop.

Pure functions over store records, so the rules can be changed and re-applied without a single new
call. Order AB shows the presumed-chosen answer as Response A; BA shows it as Response B. A judgement
that failed (transport, media, parse, truncated) never becomes a label: the pair is dropped with the
failure as its reason. Verdicts naming the same *position* in both orders are position bias.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from omni_rl.curate.synth.config import RulesConfig

ACTIONS = ("keep", "flip", "drop")
# the order failures are reported in when both orders failed differently
_FAILURE_REASONS = {"transport": "teacher_failure", "media": "teacher_failure", "truncated": "truncated"}
_WORD_RE = re.compile(r"\w+")


@dataclass(frozen=True)
class Decision:
    """What the rules made of a pair: action, reason, which candidate won and the teacher's margin."""

    action: str  # keep | flip | drop
    reason: str  # agree | teacher_prefers_rejected | <drop reason>
    winner: str | None = None  # "chosen" | "rejected" (presumed roles) | None
    margin: float | None = None


def winner_of(verdict: str | None, order: str) -> str | None:
    """Which presumed role a verdict picks in an order: chosen, rejected, tie, or None (no verdict)."""
    if verdict is None or verdict == "tie":
        return verdict
    chosen_is_a = order == "AB"
    return "chosen" if (verdict == "A") == chosen_is_a else "rejected"


def failure_reason(rec: dict[str, Any] | None) -> str | None:
    """The drop reason for an unusable judgement, or None when it carries a verdict."""
    if rec is None:
        return "teacher_failure"
    if not rec.get("ok"):
        return _FAILURE_REASONS.get(rec.get("failure", ""), "teacher_failure")
    if rec.get("failure") not in (None, "ok") or rec.get("verdict") is None:
        return _FAILURE_REASONS.get(rec.get("failure", ""), "unparsable")
    return None


def margin_of(ab: dict[str, Any], ba: dict[str, Any], winners: tuple[str | None, str | None]) -> float:
    """|P(chosen) - P(rejected)| from the two orders' P(A better); vote share when not soft."""
    pa, pb = ab.get("p_a"), ba.get("p_a")
    if ab.get("soft") and ba.get("soft") and pa is not None and pb is not None:
        p_chosen = (pa + (1.0 - pb)) / 2.0
        return abs(2.0 * p_chosen - 1.0)
    decisive = [w for w in winners if w in ("chosen", "rejected")]
    return abs(decisive.count("chosen") - decisive.count("rejected")) / 2.0


def _words(text: str) -> Counter[str]:
    return Counter(w.lower() for w in _WORD_RE.findall(text))


def length_only(winner_text: str, loser_text: str, rules: RulesConfig) -> bool:
    """True when the winner is much longer and mostly repeats the loser: the difference is length."""
    w, lo = len(winner_text.strip()), len(loser_text.strip())
    if lo == 0 or w < rules.length_ratio * lo:
        return False
    short, long_ = _words(loser_text), _words(winner_text)
    total = sum(short.values())
    shared = sum(min(n, long_[t]) for t, n in short.items())
    return total > 0 and shared / total >= rules.length_overlap


def decide(
    ab: dict[str, Any] | None, ba: dict[str, Any] | None, texts: dict[str, str], rules: RulesConfig
) -> Decision:
    """Apply the rules to the AB and BA judgements of one pair (`texts`: role → answer text)."""
    for rec in (ab, ba):
        reason = failure_reason(rec)
        if reason is not None:
            return Decision("drop", reason)
    assert ab is not None and ba is not None
    va, vb = ab["verdict"], ba["verdict"]
    if va == vb and va in ("A", "B"):
        return Decision("drop", "position_bias")
    winners = (winner_of(va, "AB"), winner_of(vb, "BA"))
    decisive = {w for w in winners if w != "tie"}
    if not decisive:
        return Decision("drop", "tie")
    if len(decisive) > 1:  # cannot happen without position bias; kept for safety
        return Decision("drop", "order_disagreement")
    if "tie" in winners and rules.agreement == "both":
        return Decision("drop", "unsure")
    winner = decisive.pop()
    margin = margin_of(ab, ba, winners)
    if margin < rules.min_margin:
        return Decision("drop", "low_margin", winner, margin)
    loser = "rejected" if winner == "chosen" else "chosen"
    if rules.length_guard and length_only(texts[winner], texts[loser], rules):
        return Decision("drop", "length_only", winner, margin)
    if winner == "chosen":
        return Decision("keep", "agree", winner, margin)
    if rules.on_disagree == "flip":
        return Decision("flip", "teacher_prefers_rejected", winner, margin)
    return Decision("drop", "teacher_prefers_rejected", winner, margin)
