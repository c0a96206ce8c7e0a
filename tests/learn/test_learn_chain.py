"""The learn chain's quick preset, through the project's own commands on CPU: `omni-rl data prepare`,
`recipes/sft_genrm.sh` (verl's SFT trainer under torchrun, PROFILE=cpu_sft), `omni-rl merge` and
`recipes/train_genrm.sh` (verl's main_ppo, PROFILE=cpu_tiny,cpu_learn) from the SFT model.

It proves what a random model never reaches inside verl's trainer: the GenRM writes valid verdicts, the
label-match branch of reward_fns/genrm.py fires, and the rewards of a step vary (so GRPO has advantages).

A second test used to train 400 SFT steps and assert held-out accuracy >= 0.9 (the judge learns the gold rule
itself). It failed on main (content-blind: verdict loss 1.108 = the blind floor) and in four more runs of the
same data (lr 2e-3 to 500 steps, 5e-3 and 1e-2 to 400): benchmarks/results/test_suite/sft_content_runs.md.
verl's SFT learning the content within 400 steps is not reproducible, so the suite no longer claims it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


def test_quick_chain_learns_the_format_and_matches_labels(tmp_path: Path) -> None:
    out = tmp_path / "learn"
    cmd = [sys.executable, "benchmarks/learn_chain.py", "--preset", "quick", "--out", str(out)]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1500)
    report = json.loads((out / "report.json").read_text())
    assert res.returncode == 0, (
        json.dumps(report["stages"], indent=1) + res.stdout[-2000:] + res.stderr[-2000:]
    )
    assert set(report["stages"]) == {"data", "sft", "genrm_grpo"}

    loss = report["results"]["sft"]["loss_trend"]
    assert loss["last"] < loss["first"], loss  # verl's SFT trainer learned the traces
    assert report["results"]["sft"]["probe"]["rows"] > 0  # the merged SFT model scored on the verdict token
    heldout = report["results"]["sft"]["probe_heldout"]  # greedy traces decoded and parsed without a server
    invalid = heldout["predictions"].get("invalid", 0)
    assert heldout["judgments"] == 24 and invalid < 12, heldout  # the format is learned
    steps = report["results"]["genrm_grpo"]["per_step"]
    assert len(steps) == 2
    assert any(m["valid_verdict_rate"] > 0 for m in steps.values()), steps
    assert any(m["label_match_rate"] > 0 for m in steps.values()), steps  # label-match branch fired
    assert any(m["score_std"] > 0 for m in steps.values()), steps  # rewards vary within a step
    # our per-rollout recomputation agrees with verl's own logged step mean
    for m in steps.values():
        assert m["mean_score"] == pytest.approx(m["verl_score_mean"], abs=1e-4)
        # the reward's own keys reach verl's training-step metrics (omni_rl.rl.patches, v1 trainer)
        assert m["verl_format_mean"] == pytest.approx(m["valid_verdict_rate"], abs=1e-4)
    assert (out / "report.md").read_text().startswith("# Does the chain learn?")
    assert (out / "models" / "genrm_grpo" / "config.json").is_file()
