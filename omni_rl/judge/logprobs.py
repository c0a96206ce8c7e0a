"""P(A better) from the judge's answer-token logprobs: a soft verdict that ranks better than 0/1.

The answer token is located in the generated text (inside `<answer>…</answer>`, or the whole output
when the judge was forced to emit just the choice), mapped back to the token that starts there, and
its top-k alternatives are renormalised over the template's choice tokens (A/B, plus `tie` for a tie
template: a tie is a verdict, never dropped). A top-k token counts for a choice when it is that choice
(surrounding whitespace ignored) or a case-insensitive prefix of exactly one multi-character
choice (`ti` → tie). When the choice token is merged with neighbouring characters, or no choice is in
the top-k, there is no soft verdict (None); the caller also falls back to the parsed verdict when the
raw `mass` on the choices is below its minimum (see judge.pipeline).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from omni_rl.judge.client import TokenLogprob

_ANSWER_RE = re.compile(r"<answer>\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ChoiceProbs:
    """Choice probabilities renormalised over `choices` (they sum to 1), plus the raw mass covered."""

    probs: dict[str, float]
    mass: float  # total (unnormalised) probability the top-k gave to the choices
    position: int  # index of the answer token in the generated sequence


def _answer_char_offset(text: str, choices: Sequence[str]) -> int | None:
    """Char offset of the verdict: after the last `<answer>`, or 0 if the text is just a choice."""
    if text.strip().lower() in {c.lower() for c in choices}:
        return len(text) - len(text.lstrip())
    matches = list(_ANSWER_RE.finditer(text))
    return matches[-1].end() if matches else None


def _token_at(tokens: Sequence[TokenLogprob], offset: int) -> int | None:
    """Index of the token that starts exactly at char `offset` (None if a token straddles it)."""
    pos = 0
    for i, tok in enumerate(tokens):
        if pos == offset:
            return i
        if pos > offset:
            return None
        pos += len(tok.token)
    return None


def _choice_of(token: str, choices: Sequence[str]) -> str | None:
    """The choice a top-k token stands for: an exact match, or a prefix of one multi-character choice."""
    key = token.strip()
    if not key:
        return None
    if key in choices:
        return key
    prefixed = [c for c in choices if len(c) > 1 and c.lower().startswith(key.lower())]
    return prefixed[0] if len(prefixed) == 1 else None


def choice_probs(
    text: str, tokens: Sequence[TokenLogprob] | None, choices: Sequence[str] = ("A", "B")
) -> ChoiceProbs | None:
    """Renormalised probabilities of `choices` at the answer token, or None when not measurable.

    Pass ``choices=("A", "B", "tie")`` for a tie template: P(tie) is then part of the distribution.
    """
    if not tokens:
        return None
    offset = _answer_char_offset(text, choices)
    if offset is None:
        return None
    idx = _token_at(tokens, offset)
    if idx is None:
        return None
    tok = tokens[idx]
    alts = dict(tok.top)
    alts.setdefault(tok.token, tok.logprob)
    mass = {c: 0.0 for c in choices}
    for t, lp in alts.items():
        key = _choice_of(t, choices)
        if key is not None and lp > -1e4:  # -9999 is vLLM's "masked" value, not a probability
            mass[key] += math.exp(lp)
    total = sum(mass.values())
    if total <= 0.0:
        return None
    # float32 logprobs can sum a hair above 1 (a 1e-8 excess failed CI's `mass <= 1`): a mass is a probability.
    return ChoiceProbs(probs={c: m / total for c, m in mass.items()}, mass=min(total, 1.0), position=idx)
