"""Soft verdicts from the real server's answer-token logprobs (choices forced by structured outputs)."""

from __future__ import annotations

import math

import pytest

from omni_rl.judge.client import JudgeClient, TokenLogprob
from omni_rl.judge.logprobs import choice_probs
from omni_rl.judge.parse import parse_verdict

FORCED = {"structured_outputs": {"regex": r"<think>[a-z ]{1,12}</think><answer>(A|B)</answer>"}}


@pytest.mark.server
@pytest.mark.parametrize("question", ["Which is better?", "Response A: 4. Response B: five. Which is right?"])
async def test_answer_token_probabilities_sum_to_one(vllm_server, question: str) -> None:
    client = JudgeClient(vllm_server.base_url, vllm_server.served_model_name)
    res = await client.chat(
        [{"role": "user", "content": question}],
        max_tokens=48,
        logprobs=True,
        top_logprobs=10,
        extra_body=FORCED,
    )
    verdict = parse_verdict(res.text, mode="strict")
    assert verdict.format_ok and verdict.verdict in ("A", "B")
    cp = choice_probs(res.text, res.logprobs)
    assert cp is not None
    assert math.isclose(sum(cp.probs.values()), 1.0, abs_tol=1e-9)
    assert res.logprobs[cp.position].token == verdict.verdict  # located the answer token itself
    assert 0.0 < cp.probs["A"] < 1.0  # both choices had real (unmasked) probability
    assert cp.probs[verdict.verdict] >= 0.5  # greedy decoding picked the more likely choice
    raw = res.raw["choices"][0]["logprobs"]["content"][cp.position]["top_logprobs"]
    raw_mass = sum(math.exp(t["logprob"]) for t in raw if t["token"] in ("A", "B"))
    # the mass is the raw top-k mass on the choices, capped at 1: float32 logprobs can sum a hair above it
    assert math.isclose(cp.mass, min(raw_mass, 1.0), rel_tol=1e-9)


def test_choice_probs_edge_cases() -> None:
    toks = [TokenLogprob("<answer>", -0.1), TokenLogprob("B", -0.2, {"B": -0.2, "A": -1.8, " A": -3.0})]
    cp = choice_probs("<answer>B", toks)
    expected_a = (math.exp(-1.8) + math.exp(-3.0)) / (math.exp(-0.2) + math.exp(-1.8) + math.exp(-3.0))
    assert cp is not None and math.isclose(cp.probs["A"], expected_a)
    assert choice_probs("no answer tag", toks) is None
    merged = [TokenLogprob("<answer", -0.1), TokenLogprob(">B", -0.1, {">B": -0.1})]
    assert choice_probs("<answer>B", merged) is None  # token straddles the answer: no soft verdict
    masked = [TokenLogprob("A", 0.0, {"A": 0.0, "B": -9999.0})]
    cp = choice_probs("A", masked)  # forced single-token answer; vLLM's -9999 means "masked"
    assert cp is not None and cp.probs == {"A": 1.0, "B": 0.0}
    assert choice_probs("A", None) is None
