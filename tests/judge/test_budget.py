"""Issue 13 defect 6: one failure budget, per-kind windowed rates (not consecutive counts), loud limits."""

from __future__ import annotations

import pickle

import pytest

from omni_rl.judge.budget import FailureBudget, FailureBudgetExceeded
from omni_rl.judge.client import JudgeError


def test_every_outcome_is_counted_per_kind() -> None:
    b = FailureBudget("t", window=100, max_rates={"transport": None, "parse": None, "truncated": None})
    for kind in ["ok", "ok", "parse", "truncated", "transport", "ok"]:
        b.record(kind)
    assert b.totals == {"ok": 3, "transport": 1, "parse": 1, "truncated": 1}
    m = b.metrics("x/")
    assert m["x/parse"] == 1.0 and m["x/parse_rate"] == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="unknown outcome"):
        b.record("weird")


def test_a_rate_is_enforced_even_when_failures_never_run_consecutively() -> None:
    """Alternating fail/ok never has two failures in a row, yet half the calls fail: that must stop."""
    b = FailureBudget("t", window=8, max_rates={"parse": 0.4})
    with pytest.raises(
        FailureBudgetExceeded, match=r"4 of the last 8 judge calls were unparsable.*max_parse_rate=0.4"
    ):
        for _ in range(10):
            b.record("parse", "no verdict")
            b.record("ok")


def test_kinds_have_separate_limits() -> None:
    keys = {"transport": "max_failure_rate"}
    b = FailureBudget("t", window=4, max_rates={"transport": 0.2, "parse": 0.8}, rate_keys=keys)
    for kind in ["parse", "parse", "parse", "ok"]:
        b.record(kind)  # parse 0.75 <= 0.8: fine, although it would break the transport limit
    with pytest.raises(JudgeError, match=r"max_failure_rate=0\.2"):  # a budget stop is a JudgeError subclass
        b.record("transport", "connection refused")  # transport 1/4 > 0.2


def test_min_outcomes_and_window_slide() -> None:
    b = FailureBudget("t", window=4, max_rates={"parse": 0.5}, min_outcomes=2)
    b.record("ok")
    b.record("ok")
    b.record("parse")  # 1/3
    b.record("ok")
    b.record("parse")  # window [ok, parse, ok, parse] = 0.5, not > 0.5
    with pytest.raises(FailureBudgetExceeded):
        b.record("parse")  # [parse, ok, parse, parse] = 0.75


def test_budget_pickles_without_its_lock() -> None:
    b = FailureBudget("t", window=3)
    b.record("ok")
    b2 = pickle.loads(pickle.dumps(b))
    b2.record("parse")
    assert b2.totals["ok"] == 1 and b2.totals["parse"] == 1
