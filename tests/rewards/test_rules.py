"""Rule terms: math-verify in worker threads and killable worker processes, MCQ, format, length; hybrid routing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from omni_rl.rewards import rules
from omni_rl.rewards.hybrid import HybridScorer, SourceRule
from omni_rl.testing.rules import slow_rule


@pytest.mark.parametrize(
    ("solution", "truth", "status"),
    [
        ("so the answer is \\boxed{\\frac{1}{2}}", "0.5", "correct"),
        ("We get $x = 12$.", "12", "correct"),
        ("\\boxed{13}", "12", "incorrect"),
        ("I am not sure.", "12", "unparsable"),
    ],
)
def test_math_verify_runs_inside_worker_threads(solution: str, truth: str, status: str) -> None:
    # verl calls sync reward code from executor threads, where signal-based timeouts raise and
    # silently become 0; with timeouts disabled the verdict is the same on a worker thread.
    with ThreadPoolExecutor(2) as pool:
        out = pool.submit(rules.math_answer, solution, truth).result()
    assert out.status == status and out.score == (1.0 if status == "correct" else 0.0)


def test_math_rejects_unparsable_ground_truth() -> None:
    with pytest.raises(ValueError, match="ground truth"):
        rules.math_answer("\\boxed{1}", "")


@pytest.mark.parametrize(
    ("solution", "choice"),
    [
        ("Reasoning... The answer is (C).", "C"),
        ("<think>A or B?</think><answer>B</answer>", "B"),
        ("\\boxed{D}", "D"),
        ("A", "A"),
        ("Answer: A ... final answer: B", None),  # contradictory commitments: no choice
        ("I cannot decide", None),
        ("The answer is a cat.", None),  # an article is not an option
    ],
)
def test_mcq_choice(solution: str, choice: str | None) -> None:
    assert rules.mcq_choice(solution) == choice


def test_mcq_format_and_length() -> None:
    assert rules.mcq_answer("The answer is C", "(c)").status == "correct"
    assert rules.mcq_answer("The answer is C", "B").score == 0.0
    with pytest.raises(ValueError, match="option letter"):
        rules.mcq_answer("C", "banana")
    assert (
        rules.format_ok("<think>x</think><answer>1</answer>", r"<think>.*</think><answer>.*</answer>") == 1.0
    )
    assert rules.format_ok("no tags", r"<answer>") == 0.0
    assert rules.length_penalty("x" * 100, 100, 50) == 0.0
    assert rules.length_penalty("x" * 125, 100, 50) == -0.5
    assert rules.length_penalty("x" * 1000, 100, 50) == -1.0


async def test_hybrid_rule_only_source_and_weights() -> None:
    scorer = HybridScorer(
        judge=None,
        sources={
            "mcq*": {"rule": "mcq", "w_model": 0.0, "format_regex": r"<answer>", "w_format": 0.1},
            "long*": {
                "rule": "none",
                "w_model": 0.0,
                "max_chars": 10,
                "length_buffer_chars": 10,
                "w_length": 1.0,
            },
        },
    )
    r = await scorer.score("mcq_val", "<answer>B</answer>", "B", None, None)
    assert r["score"] == pytest.approx(1.1) and r["judge_skipped"] == 1.0 and r["format_score"] == 1.0
    r = await scorer.score("long_x", "y" * 15, None, None, None)
    assert r["score"] == pytest.approx(-0.5) and r["length_penalty"] == -0.5
    with pytest.raises(ValueError, match="needs the judge"):
        await scorer.score("other", "text", None, None, None)


async def test_hybrid_rule_timeout_falls_back_and_is_counted(monkeypatch) -> None:
    monkeypatch.setitem(rules.RULES, "math", slow_rule)  # importable: rule workers import it by name
    scorer = HybridScorer(judge=None, sources={"m": {"rule": "math", "w_model": 0.0, "rule_timeout_s": 0.5}})
    killed = rules.pool().stats["killed"]
    r = await scorer.score("m", "\\boxed{1}", "1", None, None)
    assert r["rule_timeout"] == 1.0 and r["rule_score"] == 0.0
    assert rules.pool().stats["killed"] == killed + 1  # the worker still sleeping was killed, not abandoned


#: sympy evaluates the power tower to compare it with 1 and never returns (checked: > 40 s on this machine)
PATHOLOGICAL = "$9^{9^{9^{9}}}$"


async def test_pathological_math_answer_is_killed_and_leaves_nothing_running() -> None:
    pool = rules.RulePool(size=1)
    try:
        assert (await pool.run(rules.mcq_answer, ("<answer>B</answer>", "B"), 60)).status == "correct"  # warm
        threads = threading.active_count()
        assert pool.alive() == 1
        out = await pool.run(rules.math_answer, (PATHOLOGICAL, "1"), 2.0)
        assert out is None and pool.stats["timeouts"] == 1 and pool.stats["killed"] == 1
        assert pool.alive() == 0  # no process still computing the tower
        assert threading.active_count() == threads  # and no thread was left behind in this process
        scorer = HybridScorer(
            judge=None, sources={"m": {"rule": "math", "w_model": 0.0, "rule_timeout_s": 2.0}}
        )
        shared_killed = rules.pool().stats["killed"]
        r = await scorer.score("m", PATHOLOGICAL, "1", None, None)  # through the hybrid path (shared pool)
        assert r["rule_timeout"] == 1.0 and rules.pool().stats["killed"] == shared_killed + 1
        again = await pool.run(rules.math_answer, ("\\boxed{12}", "12"), 60)  # a fresh worker serves the next
        assert again.status == "correct" and pool.stats["started"] == 2
        with pytest.raises(ValueError, match="cannot parse the ground truth"):  # errors cross the process
            await pool.run(rules.math_answer, ("\\boxed{1}", "\\"), 60)
    finally:
        pool.close()
    assert pool.alive() == 0


def test_source_config_errors_name_the_source() -> None:
    with pytest.raises(ValueError, match=r"sources\['x'\].*unknown keys \['wrule'\]"):
        SourceRule.from_dict("x", {"wrule": 1})
    with pytest.raises(ValueError, match="rule must be"):
        SourceRule.from_dict("x", {"rule": "regex"})
