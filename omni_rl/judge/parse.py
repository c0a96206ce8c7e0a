"""The one place a judge's verdict (or pointwise score) is read out of generated text.

Two modes:
- ``strict`` (training reward): the whole output must be exactly one ``<think>…</think>`` block followed
  by exactly one ``<answer>A|B|tie</answer>`` block, with nothing but whitespace around them.
- ``lenient`` (evaluation): strict first; otherwise the explicit final markers that public judges emit,
  tried in tiers of decreasing authority — ``<answer>X</answer>`` anywhere; ``[[A]]/[[B]]/[[C]]`` (and
  ``\\boxed{X}`` only when the template asks for a boxed verdict: a boxed answer is otherwise the
  *content* of a response to a maths/multiple-choice item); phrases such as "Response 1 is better"; a
  bare answer. Answer tokens are normalised (``A.``, ``**B**``, ``(A)``, ``Response A``). Inside the
  first tier that matches, every match must agree, otherwise the text is ambiguous and there is no
  verdict. A side is never guessed.

The template's choice set is respected: under a no-tie template a strict ``tie`` is not a valid format
(no format credit), and a lenient ``tie`` is read but never format_ok.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

VerdictLabel = Literal["A", "B", "tie"]
Mode = Literal["strict", "lenient"]
MODES: tuple[str, ...] = ("strict", "lenient")

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_STRICT = re.compile(r"\A\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*\Z", re.DOTALL)
_ANSWER_ANYWHERE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_DOUBLE_BRACKET = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_BOXED = re.compile(r"\\boxed\{\s*(?:\\text\{\s*)?([A-Za-z0-9]+)\s*\}?\s*\}")
_BETTER_PHRASE = re.compile(
    r"\b(?:response|answer|output|assistant|image|video|audio|model)\s*[\(\[]?\s*(1|2|A|B)\s*[\)\]]?"
    r"\s+(?:is|was)\s+(?:clearly\s+|slightly\s+|much\s+|significantly\s+)?(?:better|superior|preferred)\b",
    re.IGNORECASE,
)
_TIE_PHRASE = re.compile(
    r"\b(?:it(?:'s| is) a tie|both (?:responses|answers|outputs) are equally (?:good|bad))\b", re.IGNORECASE
)

_DECORATION = re.compile(r"^[\s*_`'\"(\[{]+|[\s*_`'\")\]}.:;!,]+$")
_LEADING_NAME = re.compile(r"^(?:response|answer|output|assistant|option|verdict)\s*[:\-]?\s*", re.IGNORECASE)
_BARE_MAX_CHARS = 40

_TOKEN_TO_VERDICT: dict[str, VerdictLabel] = {
    "a": "A",
    "b": "B",
    "1": "A",
    "2": "B",
    "tie": "tie",
    "c": "tie",
    "equal": "tie",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """A parsed pairwise judgement: the side (or None) and whether the output had the strict format."""

    verdict: VerdictLabel | None
    format_ok: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Score:
    """A parsed pointwise judgement: an integer score in [lo, hi] (or None) and the strict-format flag."""

    score: int | None
    format_ok: bool
    reason: str


def _strict_answer(text: str) -> tuple[str | None, str]:
    """Return the raw answer content when `text` has the strict think→answer shape, else a reason."""
    for tag in _TAGS:
        count = text.count(tag)
        if count != 1:
            return None, f"expected exactly one {tag}, found {count}"
    match = _STRICT.match(text)
    if match is None:
        return None, "tags out of order or text outside the think/answer blocks"
    if not match.group("think").strip():
        return None, "empty <think> block"
    return match.group("answer").strip(), "ok"


def think_text(text: str | None) -> str | None:
    """The reasoning inside a strictly formatted output's <think> block (None if not strict)."""
    if not isinstance(text, str) or _strict_answer(text)[0] is None:
        return None
    match = _STRICT.match(text)
    return match.group("think").strip() if match else None


def _strict_verdict(text: str, allow_tie: bool = True) -> Verdict:
    """Strict pairwise parse: the training reward's format gate (the template's choice set only)."""
    answer, why = _strict_answer(text)
    if answer is None:
        return Verdict(None, False, why)
    token = answer.lower()
    allowed = ("a", "b", "tie") if allow_tie else ("a", "b")
    if token not in allowed:
        names = "A, B or tie" if allow_tie else "A or B (this template allows no tie)"
        return Verdict(None, False, f"answer must be {names}, got {answer[:40]!r}")
    return Verdict(_TOKEN_TO_VERDICT[token], True, "strict")


def normalise_token(token: str) -> str:
    """`A.`, `**B**`, `(A)`, `Response A`, ` tie ` → the bare lower-case token (`a`, `b`, `tie`)."""
    out = _DECORATION.sub("", token.strip())
    out = _LEADING_NAME.sub("", out)
    return _DECORATION.sub("", out).lower()


def _agree(tokens: list[str], tier: str) -> Verdict | None:
    """One verdict if all matches of a tier agree, a no-verdict on disagreement, None if no match."""
    verdicts = {_TOKEN_TO_VERDICT.get(normalise_token(t)) for t in tokens}
    if not tokens:
        return None
    if None in verdicts:
        return Verdict(None, False, f"lenient:{tier}: unrecognised answer {tokens[:3]!r}")
    if len(verdicts) > 1:
        return Verdict(None, False, f"lenient:{tier}: ambiguous, found {sorted(v or '' for v in verdicts)}")
    return Verdict(verdicts.pop(), False, f"lenient:{tier}")


def _bare(text: str) -> list[str]:
    """The whole output as one answer token when it is short and normalises to a choice (`**B**`)."""
    stripped = text.strip()
    if len(stripped) > _BARE_MAX_CHARS or normalise_token(stripped) not in _TOKEN_TO_VERDICT:
        return []
    return [stripped]


def _lenient_verdict(text: str, allow_tie: bool = True, boxed: bool = False) -> Verdict:
    """Evaluation parse: strict, then explicit final markers by tier; ambiguity yields no verdict."""
    strict = _strict_verdict(text, allow_tie)
    if strict.verdict is not None:
        return strict
    markers = _DOUBLE_BRACKET.findall(text) + (_BOXED.findall(text) if boxed else [])
    tiers: list[tuple[str, list[str]]] = [
        ("answer_tag", _ANSWER_ANYWHERE.findall(text)),
        ("marker", markers),
        ("phrase", _BETTER_PHRASE.findall(text) + ["tie"] * len(_TIE_PHRASE.findall(text))),
        ("bare", _bare(text)),
    ]
    for tier, tokens in tiers:
        found = _agree(tokens, tier)
        if found is not None:
            return found
    return Verdict(None, False, f"lenient: no verdict marker ({strict.reason})")


def parse_verdict(
    text: str | None, mode: Mode = "strict", *, allow_tie: bool = True, boxed: bool = False
) -> Verdict:
    """Read a pairwise verdict (A, B or tie) from judge output; never guesses on ambiguity.

    `allow_tie` is the template's choice set (strict: a tie under a no-tie template is a format error);
    `boxed` says the template asks for ``\\boxed{X}`` (lenient reads boxed verdicts only then).
    """
    if mode not in MODES:
        raise ValueError(f"parse_verdict: mode must be one of {MODES}, got {mode!r}")
    if not isinstance(text, str) or not text.strip():
        return Verdict(None, False, "empty output")
    if mode == "strict":
        return _strict_verdict(text, allow_tie)
    return _lenient_verdict(text, allow_tie, boxed)


def _to_score(token: str, lo: int, hi: int) -> int | None:
    """An integer in [lo, hi] from `token` ('7', '7/10', '7.0'), else None."""
    match = re.fullmatch(r"\s*(\d{1,3})(?:\.0+)?\s*(?:/\s*\d{1,3})?\s*", token)
    if match is None:
        return None
    value = int(match.group(1))
    return value if lo <= value <= hi else None


def parse_score(text: str | None, mode: Mode = "strict", lo: int = 1, hi: int = 10) -> Score:
    """Read a pointwise score from `<think>…</think><answer>N</answer>` (lenient: also 'Score: N')."""
    if mode not in MODES:
        raise ValueError(f"parse_score: mode must be one of {MODES}, got {mode!r}")
    if not isinstance(text, str) or not text.strip():
        return Score(None, False, "empty output")
    answer, why = _strict_answer(text)
    if answer is not None:
        value = _to_score(answer, lo, hi)
        if value is not None:
            return Score(value, True, "strict")
        why = f"answer must be an integer in [{lo}, {hi}], got {answer[:40]!r}"
    if mode == "strict":
        return Score(None, False, why)
    candidates = _ANSWER_ANYWHERE.findall(text) or re.findall(
        r"\b(?:score|rating)\s*[:=]?\s*(\d{1,3}(?:\s*/\s*\d{1,3})?)", text, re.IGNORECASE
    )
    values = {_to_score(c, lo, hi) for c in candidates}
    if not candidates or None in values:
        return Score(None, False, f"lenient: no valid score ({why})")
    if len(values) > 1:
        return Score(None, False, f"lenient: ambiguous scores {sorted(v for v in values if v is not None)}")
    return Score(values.pop(), False, "lenient")
