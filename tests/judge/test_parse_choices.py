"""Issue 13 defect 9: lenient normalisation, boxed only where asked, strict respects the choice set."""

from __future__ import annotations

import pytest

from omni_rl.judge.parse import normalise_token, parse_verdict


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("<answer>A.</answer>", "A"),
        ("<answer>**B**</answer>", "B"),
        ("<answer>(A)</answer>", "A"),
        ("<answer>Response A</answer>", "A"),
        ("<answer> Response B. </answer>", "B"),
        ("**B**", "B"),
        ("A.", "A"),
        ("(A)", "A"),
        ("Response A", "A"),
        ("Final verdict: [[ B ]]", "B"),
    ],
)
def test_lenient_normalises_unambiguous_answers(text: str, verdict: str) -> None:
    v = parse_verdict(text, "lenient")
    assert v.verdict == verdict and v.format_ok is False


@pytest.mark.parametrize("text", ["<answer>A or B</answer>", "Response A and B", "A B", "**AB**"])
def test_normalising_never_invents_a_side(text: str) -> None:
    assert parse_verdict(text, "lenient").verdict is None


def test_normalise_token_strips_decoration_only() -> None:
    assert [normalise_token(t) for t in ("A.", "**b**", "(A)", "Response 2", " tie! ")] == [
        "a",
        "b",
        "a",
        "2",
        "tie",
    ]


def test_boxed_is_a_verdict_only_when_the_template_asks_for_it() -> None:
    """A policy answering a multiple-choice item writes \\boxed{A}: that is content, not a judge verdict."""
    text = r"The correct option is \boxed{A}."
    assert parse_verdict(text, "lenient").verdict is None
    assert parse_verdict(text, "lenient", boxed=True).verdict == "A"


def test_strict_respects_the_no_tie_choice_set() -> None:
    text = "<think>close call</think><answer>tie</answer>"
    assert parse_verdict(text, "strict").format_ok is True
    no_tie = parse_verdict(text, "strict", allow_tie=False)
    assert (no_tie.verdict, no_tie.format_ok) == (None, False)  # no format credit for tie
    assert "A or B" in no_tie.reason
    lenient = parse_verdict(text, "lenient", allow_tie=False)
    assert (lenient.verdict, lenient.format_ok) == ("tie", False)  # read, never format credit
    assert parse_verdict("<think>x</think><answer>B</answer>", "strict", allow_tie=False).format_ok
