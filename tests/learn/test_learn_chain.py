"""The learn chain's quick preset, through the project's own commands on CPU: `omni-rl data prepare`,
`recipes/sft_genrm.sh` (verl's SFT trainer under torchrun, PROFILE=cpu_sft), `omni-rl merge` and
`recipes/train_genrm.sh` (verl's main_ppo, PROFILE=cpu_tiny,cpu_learn) from an SFT checkpoint.

One SFT run serves two claims (it used to be two tests with an SFT each):
- the judge learns the gold rule itself: after 400 SFT steps the merged judge answers held-out pairs right;
- what a random model never reaches inside verl's trainer: GenRM GRPO from the same run's step-30 checkpoint
  (a half-trained judge) writes valid verdicts, the label-match branch of reward_fns/genrm.py fires, and the
  rewards of a step vary (so GRPO has advantages).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """`learn_chain.py --preset quick --sft-steps 400 --grpo-from-sft-step 30`, run once for the module."""
    out = tmp_path_factory.mktemp("learn") / "learn"
    cmd = [sys.executable, "benchmarks/learn_chain.py", "--preset", "quick", "--sft-steps", "400",
           "--grpo-from-sft-step", "30", "--out", str(out)]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=2400)
    report = json.loads((out / "report.json").read_text())
    assert res.returncode == 0, (
        json.dumps(report["stages"], indent=1) + res.stdout[-2000:] + res.stderr[-2000:]
    )
    assert set(report["stages"]) == {"data", "sft", "genrm_grpo"}
    return out, report


def test_verl_sft_learns_the_gold_rule_not_only_the_format(chain: tuple[Path, dict]) -> None:
    """The content: after 400 SFT steps on the full preset's data the merged judge answers held-out pairs right."""
    _, report = chain
    loss = report["results"]["sft"]["loss_trend"]
    assert loss["last"] < loss["first"], loss  # verl's SFT trainer learned the traces
    floor = report["results"]["task"]["sft"]["loss_floor"]
    probe = report["results"]["sft"]["probe"]
    assert probe["rows"] > 0  # the merged SFT model scored on the verdict token
    # the verdict token is predicted far below the content-blind entropy (~ln 3): the judge reads the pair
    assert probe["verdict_token"] < 0.2 * floor["verdict_entropy_content_blind"], (probe, floor)
    heldout = report["results"]["sft"]["probe_heldout"]  # greedy verdict, both A/B orders, unseen pairs
    assert heldout["judgments"] == 24
    assert heldout["accuracy_no_tie"] >= 0.9 and heldout["accuracy"] >= 0.9, heldout
    preds = heldout["predictions"]
    assert set(preds) - {"invalid"} == {"A", "B", "tie"}, preds  # not position-locked
    assert preds.get("invalid", 0) <= 0.05 * heldout["judgments"], preds


def test_genrm_grpo_from_a_half_trained_judge_matches_labels(chain: tuple[Path, dict]) -> None:
    out, report = chain
    start = report["results"]["sft"]["grpo_start"]
    assert start["step"] == 30
    heldout = start[
        "probe_heldout"
    ]  # greedy traces of the step-30 judge, decoded and parsed without a server
    assert heldout["judgments"] == 24 and heldout["predictions"].get("invalid", 0) < 12, (
        heldout
    )  # format learned
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
