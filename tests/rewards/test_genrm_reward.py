"""GenRM training reward: the verdict/format/accuracy arithmetic, options, errors and pickling."""

from __future__ import annotations

import math
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omni_rl.rewards import genrm
from omni_rl.rewards.genrm import REWARD_KEYS, GenRMRewardConfig, assemble, compute_score, compute_score_sync

OK = "<think>A cites the figure; B invents a number.</think><answer>{}</answer>"


@pytest.mark.parametrize(
    ("text", "label", "kwargs", "score", "acc", "fmt"),
    [
        (OK.format("A"), "A", {}, 1.5, 1.0, 1.0),
        (OK.format("B"), "A", {}, 0.5, 0.0, 1.0),
        (OK.format("tie"), "tie", {}, 1.5, 1.0, 1.0),
        (OK.format("tie"), "A", {}, 0.5, 0.0, 1.0),
        (OK.format("tie"), "A", {"tie_credit": 0.5}, 1.0, 0.5, 1.0),
        (OK.format("B"), "tie", {"tie_credit": 0.25}, 0.75, 0.25, 1.0),
        (OK.format("B"), "A", {"tie_credit": 0.5}, 0.5, 0.0, 1.0),  # tie credit never rewards the wrong side
        ("[[A]]", "A", {}, 0.0, 0.0, 0.0),  # right side, wrong format: nothing
        (OK.format("A") + " trailing", "A", {}, 0.0, 0.0, 0.0),
        ("<think>A cites the fig", "A", {}, 0.0, 0.0, 0.0),  # truncated
        ("[[A]]", "A", {"parse_mode": "lenient"}, 1.0, 1.0, 0.0),
        (OK.format("A"), "A", {"format_credit": 0.2, "accuracy_credit": 0.8}, 1.0, 1.0, 1.0),
        # r1 without a consistency check (wrong answers are never sent to the consistency judge)
        (OK.format("B"), "A", {"style": "r1"}, 0.5, 0.0, 1.0),
        ("nonsense", "A", {"style": "r1"}, 0.0, 0.0, 0.0),
    ],
)
def test_reward_table(text: str, label: str, kwargs: dict, score: float, acc: float, fmt: float) -> None:
    out = compute_score_sync("src", text, label, {"index": 3}, **kwargs)
    assert (out["score"], out["accuracy"], out["format"]) == pytest.approx((score, acc, fmt))
    assert tuple(out) == REWARD_KEYS
    assert out["acc"] == out["accuracy"] and out["pred"] == out["verdict"] and out["label"] == label


@pytest.mark.parametrize(("consistency", "score"), [(1.0, 2.0), (-1.0, 1.0), (0.0, 1.5)])
def test_r1_formula(consistency: float, score: float) -> None:
    cfg = GenRMRewardConfig(style="r1")
    out = assemble(OK.format("A"), "A", cfg, (consistency, 0.0 if consistency else 1.0, 1.0))
    assert out["score"] == pytest.approx(score)  # 0.5*format + acc*(1 + 0.5*consistency)
    assert out["consistency"] == consistency


def test_length_penalty_ramps_and_caps() -> None:
    kw = {"length_limit": 100, "length_buffer": 100, "length_penalty": 0.4}

    def pad(n: int) -> str:  # a well-formed output of exactly n characters
        return "<think>" + "x" * (n - len("<think></think><answer>A</answer>")) + "</think><answer>A</answer>"

    short, mid, long = (compute_score_sync("s", pad(n), "A", **kw) for n in (90, 150, 1000))
    assert short["length_penalty"] == 0.0 and short["score"] == 1.5
    assert mid["length_penalty"] == pytest.approx(0.4 * (mid["response_chars"] - 100) / 100)
    assert long["length_penalty"] == pytest.approx(0.4) and long["score"] == pytest.approx(1.1)


def test_ground_truth_forms_and_errors() -> None:
    assert compute_score_sync("s", OK.format("B"), {"label": "b"})["accuracy"] == 1.0
    assert compute_score_sync("s", OK.format("tie"), " TIE ")["accuracy"] == 1.0
    with pytest.raises(ValueError, match=r"row 'p-9' of 'hh'.*ground_truth must be 'A', 'B' or 'tie'"):
        compute_score_sync("hh", OK.format("A"), "chosen", {"id": "p-9"})


def test_unknown_or_bad_reward_kwargs_fail_loudly() -> None:
    with pytest.raises(TypeError, match=r"unknown reward_kwargs \['tie_creditt'\]"):
        compute_score_sync("s", OK.format("A"), "A", tie_creditt=0.5)
    with pytest.raises(ValueError, match="tie_credit must be in"):
        compute_score_sync("s", OK.format("A"), "A", tie_credit=2)
    with pytest.raises(ValueError, match="style must be one of"):
        compute_score_sync("s", OK.format("A"), "A", style="r2")
    # verl's own GenRM-router kwargs are accepted and are not configuration
    out = compute_score_sync(
        "s", OK.format("A"), "A", reward_router_address=None, reward_model_tokenizer=None
    )
    assert out["score"] == 1.5


def test_r1_without_an_endpoint_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="style=r1 needs a consistency judge"):
        compute_score_sync("s", OK.format("A"), "A", style="r1")


def test_functions_and_config_pickle() -> None:
    from reward_fns import genrm as adapter

    for obj in (adapter.compute_score, compute_score_sync, GenRMRewardConfig(style="r1", tie_credit=0.5)):
        assert pickle.loads(pickle.dumps(obj)) == obj
    assert adapter.compute_score is genrm.compute_score


adversarial = st.one_of(
    st.text(max_size=400),
    st.lists(
        st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", "A", "B", "tie", "[[A]]", "\n", "é漢🙂"]),
        max_size=25,
    ).map("".join),
    st.builds(lambda t, v, tail: f"<think>{t}</think><answer>{v}</answer>{tail}", st.text(max_size=50),
              st.sampled_from(["A", "B", "tie", "C", ""]), st.text(max_size=5)),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    adversarial,
    st.sampled_from(["A", "B", "tie"]),
    st.sampled_from([0.0, 0.5]),
    st.sampled_from(["strict", "lenient"]),
)
def test_reward_properties(text: str, label: str, tie_credit: float, mode: str) -> None:
    out = compute_score_sync("s", text, label, tie_credit=tie_credit, parse_mode=mode)
    assert tuple(out) == REWARD_KEYS  # same keys on every call, whatever the text
    assert all(isinstance(out[k], float) for k in REWARD_KEYS if k not in ("verdict", "pred", "label"))
    assert math.isfinite(out["score"]) and 0.0 <= out["score"] <= 1.5
    assert out["verdict"] in ("A", "B", "tie", "none")
    if mode == "strict" and out["format"] == 0.0:
        assert out["score"] == 0.0 and out["verdict"] == "none"
    if out["verdict"] == label:
        assert out["accuracy"] == 1.0
    elif out["verdict"] in ("A", "B") and label in ("A", "B"):
        assert out["accuracy"] == 0.0


@settings(max_examples=20, deadline=None)
@given(
    st.text(min_size=1, max_size=3).filter(lambda s: "<" not in s and s.strip()), st.integers(10_000, 60_000)
)
def test_reward_on_very_long_outputs(unit: str, n: int) -> None:
    think = (unit * (n // len(unit) + 1)).strip() or "x"
    out = compute_score_sync("s", f"<think>{think}</think><answer>B</answer>", "B", length_limit=4096)
    assert out["format"] == 1.0 and out["accuracy"] == 1.0
    assert out["length_penalty"] == pytest.approx(0.5) and out["score"] == pytest.approx(1.0)


async def test_compute_score_is_awaitable_for_verl() -> None:
    out = await compute_score("s", OK.format("A"), "A")
    assert out["score"] == 1.5


def test_no_tie_template_gives_no_format_credit_for_a_tie() -> None:
    """Issue 13 defect 9: strict parsing respects the export template's choice set."""
    text = "<think>they look equal</think><answer>tie</answer>"
    with_tie = compute_score_sync("s", text, "A")
    no_tie = compute_score_sync("s", text, "A", allow_tie=False)
    assert with_tie["format"] == 1.0 and with_tie["score"] == pytest.approx(0.5)
    assert no_tie["format"] == 0.0 and no_tie["score"] == 0.0 and no_tie["verdict"] == "none"
