"""The real main job on CPU: `PROFILE=cpu_tiny bash recipes/train_genrm.sh` runs verl's own main_ppo for
two GRPO steps on the tiny model and a parquet exported from real HH-RLHF pairs, rewarded by
reward_fns/genrm.py; once as a local run and once through `ray job submit` to a local Ray head.

What is proven, from verl's own outputs:
- two steps complete and the console logger prints the reward metrics of each;
- every rollout of every step was scored by *our* function: verl's rollout dump (trainer.rollout_data_dir)
  holds each step's responses and verl's scores, and `compute_score` recomputed on those responses gives
  the same scores (the profile's length penalty makes them response-dependent, so a constant or any
  other function would not match), and their mean is the step's logged `critic/score/mean`;
- the rollout served the actor's current weights each step (verl's trajectory-staleness metric is 0: the
  server's weight version, set only when the actor's weights are pushed, is the previous step's);
- the checkpoint merges to an HF folder with `python -m verl.model_merger`, whose weights differ from
  the starting model (the GRPO updates changed the policy).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml

from omni_rl.learn.curves import step_metrics
from omni_rl.testing.servers import RayHead
from omni_rl.testing.verl_env import recipe_env

REPO = Path(__file__).resolve().parents[2]
STEPS = 2
ROLLOUTS_PER_STEP = 2 * 2  # data.train_batch_size x rollout.n in the cpu_tiny profile

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def genrm_parquet(real_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Judge-prompt parquet exported by `omni-rl data prepare` from four real HH-RLHF pairs."""
    out = tmp_path_factory.mktemp("genrm-data")
    rows = (real_fixtures / "hh_rlhf_pairs.jsonl").read_text().splitlines()[:4]
    (out / "pairs.jsonl").write_text("\n".join(rows) + "\n")
    cmd = [sys.executable, "-m", "omni_rl.cli", "data", "prepare", "loader=hh_rlhf"]
    cmd += [f"path={out / 'pairs.jsonl'}", f"out_dir={out}", "progress=false"]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return out / "train.parquet"


def _overrides(parquet: Path, model: Path, work: Path) -> list[str]:
    """Point the profile at this test's data, model and output folders (verl keys only)."""
    return [
        f"data.train_files={parquet}",
        f"actor_rollout_ref.model.path={model}",
        f"trainer.default_local_dir={work / 'ckpt'}",
        f"trainer.rollout_data_dir={work / 'rollouts'}",
    ]


def _reward_kwargs() -> dict:
    """The reward options the cpu_tiny profile passes to reward_fns/genrm.py."""
    prof = yaml.safe_load((REPO / "recipes/config/profile/cpu_tiny.yaml").read_text())
    return prof["reward"]["custom_reward_function"]["reward_kwargs"]


def check_run(log: str, work: Path, model: Path) -> dict[int, dict[str, float]]:
    """Every assertion about one finished run; returns the per-step metrics for the caller to show."""
    from omni_rl.rewards.genrm import compute_score_sync

    metrics = step_metrics(log)
    assert sorted(metrics) == list(range(1, STEPS + 1)), f"steps logged: {sorted(metrics)}\n{log[-3000:]}"
    kwargs = _reward_kwargs()
    for step, m in metrics.items():
        rows = [json.loads(x) for x in (work / "rollouts" / f"{step}.jsonl").read_text().splitlines()]
        assert len(rows) == ROLLOUTS_PER_STEP
        ours = [
            compute_score_sync("hh_rlhf", r["output"], r["gts"], extra_info={}, **kwargs)["score"]
            for r in rows
        ]
        assert [r["score"] for r in rows] == pytest.approx(ours, abs=1e-5), (
            f"step {step}: verl's scores differ"
        )
        assert any(s != 0 for s in ours), "length penalty should make scores response-dependent"
        assert m["critic/score/mean"] == pytest.approx(sum(ours) / len(ours), abs=1e-4)
        # the reward's own keys reach the training step's metrics (omni_rl.rl.patches, installed lazily)
        assert "reward_extra/format/mean" in m, sorted(m)
        # the server's version is set only by update_weights(global_steps=...): 0 means this step's
        # rollouts came from the weights pushed after the previous step
        assert m["training/off_policy/trajectory_staleness/max"] == 0, "rollout served stale weights"
    actor = work / "ckpt" / f"global_step_{STEPS}" / "actor"
    merged = work / "hf"
    cmd = [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp"]
    cmd += ["--local_dir", str(actor), "--target_dir", str(merged)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=recipe_env("cpu_tiny"))
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_trained(model, merged)
    return metrics


def _assert_trained(start: Path, merged: Path) -> None:
    """The merged HF model loads, has the start model's tensors, and some of them moved."""
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32).state_dict()
    after = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).state_dict()
    assert before.keys() == after.keys()
    assert any(not torch.allclose(before[k], after[k].float()) for k in before)


def test_cpu_profile_runs_verl_main_ppo(genrm_parquet: Path, tiny_text_model: Path, tmp_path: Path) -> None:
    """`PROFILE=cpu_tiny bash recipes/train_genrm.sh`: verl starts its own local Ray, trains, saves."""
    cmd = ["bash", "recipes/train_genrm.sh", *_overrides(genrm_parquet, tiny_text_model, tmp_path)]
    res = subprocess.run(
        cmd, cwd=REPO, env=recipe_env("cpu_tiny"), capture_output=True, text=True, timeout=1100
    )
    log = res.stdout + res.stderr
    (tmp_path / "train.log").write_text(log)
    assert res.returncode == 0, log[-5000:]
    metrics = check_run(log, tmp_path, tiny_text_model)
    print({s: (m["critic/score/mean"], m["timing_s/step"]) for s, m in metrics.items()})


@pytest.mark.ray
def test_cpu_profile_via_ray_job_submit(genrm_parquet: Path, tiny_text_model: Path, tmp_path: Path) -> None:
    """The same profile through `ray job submit --working-dir .` to a local head (job API on 127.0.0.1).

    verl's resource pools ask for a GPU resource, so this head advertises a logical one (and 8 logical
    CPU slots); ray_init's num_cpus/num_gpus are nulled because the job joins an existing cluster.
    """
    ray_tmp = tempfile.mkdtemp(prefix="orl-ray-")  # short: Ray's socket paths must fit in 107 bytes
    head = RayHead(num_cpus=8, num_gpus=1, temp_dir=ray_tmp).start()
    try:
        runtime_env = yaml.safe_load((REPO / "recipes/ray_runtime_env.yaml").read_text())
        runtime_env["env_vars"].update(PYTHON=sys.executable, PROFILE="cpu_tiny", HF_HUB_OFFLINE="1")
        # what the profile documents for jobs: the job's workers take their env from the runtime env
        runtime_env["env_vars"].update(
            VERL_USE_EXTERNAL_MODULES="omni_rl.rl,omni_rl.cpu.plugin", VERL_PLATFORM="cpu"
        )
        overrides = _overrides(genrm_parquet, tiny_text_model, tmp_path)
        overrides += ["ray_kwargs.ray_init.num_cpus=null", "ray_kwargs.ray_init.num_gpus=null"]
        ray_bin = str(Path(sys.executable).with_name("ray"))
        cmd = [ray_bin, "job", "submit", f"--address={head.dashboard_address}", f"--working-dir={REPO}"]
        cmd += [
            "--runtime-env-json",
            json.dumps(runtime_env),
            "--",
            "bash",
            "recipes/train_genrm.sh",
            *overrides,
        ]
        res = _submit(cmd)
    finally:
        head.stop()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    log = res.stdout + res.stderr
    (tmp_path / "job.log").write_text(log)
    assert res.returncode == 0 and "succeeded" in log, log[-5000:]
    check_run(log, tmp_path, tiny_text_model)


def _submit(cmd: list[str], attempts: int = 12) -> subprocess.CompletedProcess:
    """`ray job submit`, retried while the new head's job agent is still starting (nothing was submitted)."""
    for _ in range(attempts):
        res = subprocess.run(
            cmd, cwd=REPO, env=recipe_env("cpu_tiny"), capture_output=True, text=True, timeout=1100
        )
        if "No available agent to submit job" not in res.stdout + res.stderr:
            return res
        time.sleep(10)
    return res
