"""Checks on a finished verl GRPO run, from verl's own outputs: console metrics, rollout dumps, checkpoints.

Why one module: several tests run the same recipe by different routes (the gpu-smoke dress rehearsal, the
README's Ray route); each asserts the same facts about its run instead of re-running the job.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omni_rl.learn.curves import step_metrics


def check_steps(log: str, steps: int, reward_keys: tuple[str, ...] = ()) -> dict[int, dict[str, float]]:
    """Every step logged, our reward keys in its metrics, and the rollout served the current weights."""
    metrics = step_metrics(log)
    assert sorted(metrics) == list(range(1, steps + 1)), f"steps logged: {sorted(metrics)}\n{log[-3000:]}"
    for step, m in metrics.items():
        missing = [k for k in ("critic/score/mean", *reward_keys) if k not in m]
        assert not missing, f"step {step}: {missing} not in verl's metrics: {sorted(m)}"
        # the server's version is set only by update_weights(global_steps=...): 0 means this step's
        # rollouts came from the weights pushed after the previous step
        assert m["training/off_policy/trajectory_staleness/max"] == 0, (
            f"step {step}: rollout served stale weights"
        )
    return metrics


def check_rollouts(
    metrics: dict[int, dict[str, float]], rollouts: Path, per_step: int, score: Callable[[str, Any], float]
) -> None:
    """verl's dumped scores are `score(output, ground_truth)` recomputed, and their mean is the logged one.

    `score` must make the reward response-dependent (e.g. the cpu_tiny length penalty): a constant or any
    other function would not match.
    """
    for step, m in metrics.items():
        rows = [json.loads(x) for x in (rollouts / f"{step}.jsonl").read_text().splitlines()]
        assert len(rows) == per_step, f"step {step}: {len(rows)} rollouts dumped, expected {per_step}"
        ours = [score(r["output"], r["gts"]) for r in rows]
        got = [r["score"] for r in rows]
        assert all(abs(a - b) <= 1e-5 for a, b in zip(got, ours, strict=True)), (
            f"step {step}: {got} != {ours}"
        )
        assert any(s != 0 for s in ours), "the reward should be response-dependent"
        assert abs(m["critic/score/mean"] - sum(ours) / len(ours)) <= 1e-4, (m["critic/score/mean"], ours)


def check_merged(actor: Path, start: Path, target: Path, env: dict[str, str]) -> None:
    """`python -m verl.model_merger` turns the checkpoint into an HF folder whose weights moved from `start`."""
    import torch
    from transformers import AutoModelForCausalLM

    cmd = [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp"]
    cmd += ["--local_dir", str(actor), "--target_dir", str(target)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    before = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32).state_dict()
    after = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32).state_dict()
    assert before.keys() == after.keys()
    assert any(not torch.allclose(before[k], after[k].float()) for k in before), "GRPO moved no weight"
