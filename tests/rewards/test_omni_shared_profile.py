"""reward_fns/omni.py under a shared CPU profile: the GenRM-training reward options that cpu_tiny sets for the
GenRM job are dropped (with a warning naming them) instead of failing the policy job; typos still fail."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from omni_rl.rewards.api import genrm_training_keys, get_scorer

REPO = Path(__file__).resolve().parents[2]


def _profile_kwargs(name: str) -> dict:
    prof = yaml.safe_load((REPO / "recipes/config/profile" / f"{name}.yaml").read_text())
    return dict(prof["reward"]["custom_reward_function"]["reward_kwargs"])


def test_cpu_tiny_reward_kwargs_do_not_break_the_policy_reward(caplog: pytest.LogCaptureFixture) -> None:
    kwargs = _profile_kwargs("cpu_tiny")
    assert set(kwargs) <= genrm_training_keys()  # the shared profile only sets GenRM-training options
    with caplog.at_level(logging.WARNING, logger="omni_rl.rewards.api"):
        scorer = get_scorer({**kwargs, "base_url": "http://127.0.0.1:9/v1", "model": "m"})
    assert scorer.judge is not None and scorer.judge.cfg.base_url == "http://127.0.0.1:9/v1"
    assert all(k in caplog.text for k in kwargs), caplog.text


def test_cpu_policy_profile_sets_only_policy_keys() -> None:
    kwargs = _profile_kwargs("cpu_policy")
    scorer = get_scorer({**kwargs, "base_url": "http://127.0.0.1:9/v1"})
    assert scorer.judge.cfg.template.endswith("judge_compact.yaml") and scorer.judge.cfg.max_tokens == 24


def test_a_typo_is_still_refused() -> None:
    with pytest.raises(ValueError, match="lenght_limit"):
        get_scorer({"base_url": "http://127.0.0.1:9/v1", "lenght_limit": 16})
