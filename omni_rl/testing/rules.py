"""Rule functions for tests of the rule worker pool. A spawned rule worker imports its function by module
name, and a test module under `--import-mode=importlib` cannot be imported by name, so they live here."""

from __future__ import annotations

import time

from omni_rl.rewards.rules import RuleOutcome


def slow_rule(solution: str, truth: str) -> RuleOutcome:
    """A rule that outlives a short timeout, so a test can see its worker killed rather than abandoned."""
    del solution, truth
    time.sleep(5)
    return RuleOutcome(1.0, "correct")
