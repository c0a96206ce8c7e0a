"""The learn report's headline numbers come from the served eval, with their sign."""

from __future__ import annotations

from omni_rl.learn.report import _grpo_gain


def test_grpo_gain_is_sft_grpo_minus_sft_on_the_served_eval() -> None:
    evals = {"sft": {"acc_no_ties": 0.743, "acc_with_ties": 0.55},
             "sft_grpo": {"acc_no_ties": 1.0, "acc_with_ties": 0.5}}  # fmt: skip
    (line,) = [x for x in _grpo_gain(evals) if x]
    assert "+0.257 without ties" in line and "-0.050 with ties" in line
    assert _grpo_gain({"sft": evals["sft"]}) == []  # no SFT+GRPO eval (failed stage): no claim
