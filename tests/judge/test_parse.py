"""Verdict parser: strict format gate for training, lenient markers for evaluation, no guessing."""

from __future__ import annotations

import pytest

from omni_rl.judge.parse import parse_score, parse_verdict, think_text


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("<think>A is more accurate.</think><answer>A</answer>", "A"),
        ("  <think>\nB wins\n</think>\n\n<answer> B </answer>\n", "B"),
        ("<think>equal</think><answer>tie</answer>", "tie"),
        ("<think>equal</think><answer>TIE</answer>", "tie"),
    ],
)
def test_strict_accepts_exact_format(text: str, verdict: str) -> None:
    v = parse_verdict(text, "strict")
    assert (v.verdict, v.format_ok, v.reason) == (verdict, True, "strict")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("<think>x</think><answer>A</answer> trailing", "outside"),
        ("preamble <think>x</think><answer>A</answer>", "outside"),
        ("<answer>A</answer><think>x</think>", "out of order"),
        ("<think>x</think><think>y</think><answer>A</answer>", "exactly one <think>"),
        ("<think>x<think>y</think></think><answer>A</answer>", "exactly one <think>"),
        ("<think>x</think><answer>A</answer><answer>B</answer>", "exactly one <answer>"),
        ("<think>x</think><answer>A or B</answer>", "must be A, B or tie"),
        ("<think>x</think><answer>1</answer>", "must be A, B or tie"),
        ("<think>   </think><answer>A</answer>", "empty <think>"),
        ("<think>x</think><answer>A", "exactly one </answer>"),
        ("<think>the model was cut off mid-sentence", "exactly one </think>"),
        ("[[A]]", "exactly one <think>"),
        ("", "empty output"),
    ],
)
def test_strict_rejects_everything_else(text: str, why: str) -> None:
    v = parse_verdict(text, "strict")
    assert v.verdict is None and v.format_ok is False
    assert why in v.reason


@pytest.mark.parametrize(
    ("text", "verdict", "tier"),
    [
        ("Final verdict: [[A]]", "A", "marker"),
        ("After comparing, [[C]]", "tie", "marker"),
        (r"The answer is \boxed{B}.", "B", "marker"),
        (r"\boxed{\text{A}}", "A", "marker"),
        ("Overall, Response 2 is better.", "B", "phrase"),
        ("Image 1 is better than image 2.", "A", "phrase"),
        ("Response (B) is clearly superior.", "B", "phrase"),
        ("It's a tie.", "tie", "phrase"),
        ("reasoning... <answer>B</answer> and some chatter after", "B", "answer_tag"),
        ("<answer>2</answer>", "B", "answer_tag"),
        # the explicit final marker outranks a free-text phrase in the reasoning
        ("Response 1 is better on style, but on accuracy... [[B]]", "B", "marker"),
    ],
)
def test_lenient_reads_public_judge_markers(text: str, verdict: str, tier: str) -> None:
    v = parse_verdict(text, "lenient", boxed="boxed" in text)  # boxed verdicts only when the template asks
    assert v.verdict == verdict
    assert v.format_ok is False
    assert v.reason == f"lenient:{tier}"


def test_lenient_prefers_strict_when_valid() -> None:
    v = parse_verdict("<think>x</think><answer>B</answer>", "lenient")
    assert (v.verdict, v.format_ok) == ("B", True)


@pytest.mark.parametrize(
    "text",
    [
        "[[A]] ... actually [[B]]",
        r"\boxed{A} or maybe [[B]]",
        "Response 1 is better. No wait, Response 2 is better.",
        "<answer>A</answer><answer>B</answer>",
        "<answer>A and B</answer>",
        "Both are fine, I cannot decide.",
        "A B tie",
    ],
)
def test_lenient_never_guesses_on_ambiguity(text: str) -> None:
    v = parse_verdict(text, "lenient", boxed=True)
    assert v.verdict is None
    assert v.format_ok is False


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        parse_verdict("<think>x</think><answer>A</answer>", "loose")  # type: ignore[arg-type]


def test_non_string_input_is_no_verdict() -> None:
    assert parse_verdict(None).verdict is None  # type: ignore[arg-type]


def test_think_text_only_for_strict_outputs() -> None:
    assert think_text("<think> A has fewer errors </think><answer>A</answer>") == "A has fewer errors"
    assert think_text("<think>x</think><answer>A</answer> extra") is None


@pytest.mark.parametrize(
    ("text", "mode", "score", "ok"),
    [
        ("<think>fine</think><answer>7</answer>", "strict", 7, True),
        ("<think>fine</think><answer>10/10</answer>", "strict", 10, True),
        ("<think>fine</think><answer>11</answer>", "strict", None, False),
        ("<think>fine</think><answer>seven</answer>", "strict", None, False),
        ("Score: 8", "strict", None, False),
        ("Score: 8", "lenient", 8, False),
        ("Score: 8 ... Score: 3", "lenient", None, False),
        ("rating = 4/10", "lenient", 4, False),
    ],
)
def test_pointwise_scores(text: str, mode: str, score: int | None, ok: bool) -> None:
    s = parse_score(text, mode)  # type: ignore[arg-type]
    assert (s.score, s.format_ok) == (score, ok)
