"""`make gpu-smoke` proven as far as a CPU machine can: its own logic runs end to end on CPU (`--device cpu`, the
dress rehearsal: same stages and checks, CPU profiles), it refuses without CUDA, its GPU launches (vLLM, and the
no-vLLM `--rollout hf` variant) compose with verl's config, its budget and SIGTERM still write the report."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from omni_rl.testing.verl_env import plugin_free_env, recipe_env
from omni_rl.testing.verl_runs import check_merged, check_rollouts, check_steps

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import gpu_smoke  # noqa: E402


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """`bash scripts/gpu_smoke.sh --device cpu`: the whole smoke on CPU, run once for the module."""
    out = tmp_path_factory.mktemp("gpu-smoke-cpu")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_smoke.sh"), "--device", "cpu", "--out", str(out)],
                          cwd=REPO, env=plugin_free_env(), capture_output=True, text=True, timeout=1700)  # fmt: skip
    return out, proc


@pytest.mark.slow
@pytest.mark.server
def test_cpu_dress_rehearsal_passes_every_check(rehearsal: tuple[Path, subprocess.CompletedProcess]) -> None:
    out, proc = rehearsal
    report = json.loads((out / "report.json").read_text())
    assert proc.returncode == 0 and report["status"] == "ok", (
        report.get("error"),
        report["problems"],
        proc.stdout[-3000:],
    )
    assert [s["stage"] for s in report["stages"]] == ["genrm_grpo", "policy_grpo"]
    assert all(s["steps"] == gpu_smoke.STEPS for s in report["stages"])
    assert report["problems"] == [] and len(report["checks"]) == 2
    assert (out / "models" / "genrm" / "config.json").is_file()  # the merged GenRM that was served
    policy = report["stages"][1]["metrics"]
    for m in policy.values():  # the served GenRM answered every call with a parsable, forced verdict
        assert m["reward_extra/judge_failed/mean"] == 0 and m["reward_extra/parse_failed/mean"] == 0
        assert 0.0 <= m["critic/score/mean"] <= 1.0
    assert "status: **ok**" in (out / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.server
def test_rehearsal_rewards_are_the_judges_own(rehearsal: tuple[Path, subprocess.CompletedProcess]) -> None:
    """The policy reward is the GenRM's soft verdict (varies across samples), not a neutral constant."""
    out, _ = rehearsal
    rows = [
        json.loads(x)
        for f in sorted((out / "rollouts" / "policy").glob("*.jsonl"))
        for x in f.read_text().splitlines()
    ]
    assert rows, "verl dumped no policy rollouts"
    scores = {round(r["score"], 6) for r in rows}
    assert len(scores) > 1, scores  # a constant (e.g. the neutral 0.5 of a failed judge) would be one value


@pytest.mark.slow
@pytest.mark.server
def test_rehearsal_genrm_job_is_scored_by_our_function_and_trains(
    rehearsal: tuple[Path, subprocess.CompletedProcess], tmp_path: Path
) -> None:
    """The rehearsal's `PROFILE=cpu_tiny bash recipes/train_genrm.sh` (verl's own main_ppo, its own local Ray):

    - both steps logged, with the reward's own keys (omni_rl.rl.patches) and fresh weights (staleness 0);
    - every rollout of every step was scored by *our* function: verl's dump holds each response and verl's
      score, and reward_fns/genrm.py recomputed on it gives the same score (the profile's length penalty makes
      it response-dependent), whose mean is the step's logged `critic/score/mean`;
    - the checkpoint merges with `python -m verl.model_merger` to an HF folder whose weights moved.
    """
    from omni_rl.rewards.genrm import compute_score_sync

    out, _ = rehearsal
    log = (out / "logs" / "genrm_grpo.log").read_text()
    metrics = check_steps(log, gpu_smoke.STEPS, ("reward_extra/format/mean",))
    prof = yaml.safe_load((REPO / "recipes/config/profile/cpu_tiny.yaml").read_text())
    kwargs = prof["reward"]["custom_reward_function"]["reward_kwargs"]
    per_step = prof["data"]["train_batch_size"] * prof["actor_rollout_ref"]["rollout"]["n"]

    def ours(output: str, gts: str) -> float:
        return compute_score_sync("synthetic_words", output, gts, extra_info={}, **kwargs)["score"]

    check_rollouts(metrics, out / "rollouts" / "genrm", per_step, ours)
    actor = out / "ckpt" / "genrm" / f"global_step_{gpu_smoke.STEPS}" / "actor"
    base = Path(json.loads((out / "report.json").read_text())["inputs"]["base"])
    check_merged(actor, base, tmp_path / "hf", recipe_env("cpu_tiny"))


def test_gpu_smoke_refuses_without_cuda(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_smoke.sh"), "--out", str(tmp_path)],
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stdout
    assert "--device cpu" in proc.stdout and "--plan" in proc.stdout  # says what to run instead


@pytest.mark.slow
@pytest.mark.parametrize("rollout", ["vllm", "hf"])
def test_gpu_smoke_plan_composes_each_gpu_variant(tmp_path: Path, rollout: str) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_smoke.py"), "--plan", "--rollout", rollout,
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    plans = [ln for ln in proc.stdout.splitlines() if ln.startswith("[gpu-smoke] plan:")]
    name = "vllm" if rollout == "vllm" else "hf_cpu"
    assert len(plans) == (2 if rollout == "vllm" else 1)
    assert all(f"rollout={name}, device=cuda, steps=2, gpus=1" in p for p in plans), plans
    if rollout == "vllm":
        assert "recipes/align_policy.sh" in plans[1] and "'RM': 'external'" in plans[1]
    assert "plan problem" not in proc.stdout
    for parquet in ("genrm_data/train.parquet", "genrm_data/val.parquet", "policy_data/train.parquet"):
        assert (tmp_path / parquet).stat().st_size > 0  # val.parquet: verl 0.9.1 always builds the val set


def test_gpu_hf_profile_loads_only_the_rollout_plugin() -> None:
    """PROFILE=gpu_tiny,gpu_hf adds the rollout plug-in but never the CPU platform (verl stays on CUDA)."""
    script = f'source {REPO / "recipes" / "lib.sh"}; use_cpu_profile; echo "$VERL_USE_EXTERNAL_MODULES|${{VERL_PLATFORM:-}}"'
    env = {
        **plugin_free_env(),
        "HERE": str(REPO / "recipes"),
        "PROFILE": "gpu_tiny,gpu_hf",
        "VERL_USE_EXTERNAL_MODULES": "omni_rl.rl",
    }
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "omni_rl.rl,omni_rl.cpu.rollout_plugin|"
    env["PROFILE"] = "cpu_tiny"
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "omni_rl.rl,omni_rl.cpu.plugin|cpu"


@pytest.mark.slow
def test_sigterm_ends_the_running_stage_and_still_writes_the_report(tmp_path: Path) -> None:
    """An outer `timeout` (SIGTERM) mid-stage: the stage's process group dies and the report says why."""
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "gpu_smoke.py"), "--device", "cpu", "--out",
                             str(tmp_path)], cwd=REPO, env=plugin_free_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (tmp_path / "logs" / "genrm_grpo.log").exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.5)
    time.sleep(5)  # verl is starting: its Ray and workers are in the stage's process group
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "failed" and "SIGTERM" in report["error"], report
    assert "SIGTERM" in (tmp_path / "report.md").read_text()
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "genrm_data")], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "a process of the killed stage outlived the smoke"


def test_budget_gives_each_stage_what_is_left() -> None:
    budget = gpu_smoke.Budget(gpu_smoke.REPORT_RESERVE_S + 60)
    assert 55 < budget.left() <= 60
    spent = gpu_smoke.Budget(gpu_smoke.REPORT_RESERVE_S)
    with pytest.raises(TimeoutError, match="budget"):
        spent.left()


def test_checks_name_the_missing_step_and_the_failed_counter() -> None:
    stage = {"stage": "policy_grpo", "steps": 1, "metrics": {"1": {"critic/score/mean": 0.5,
             "reward_extra/parse_failed/mean": 0.25}}}  # fmt: skip
    problems = gpu_smoke.check_stage(
        stage, ("critic/score/mean", "timing_s/step"), ("reward_extra/parse_failed/mean",)
    )
    assert problems == ["policy_grpo: trained 1 of 2 steps", "policy_grpo step 1: no timing_s/step in verl's metrics",
                        "policy_grpo step 1: reward_extra/parse_failed/mean=0.25 (must be 0)"]  # fmt: skip


def test_report_from_verl_console_lines(tmp_path: Path) -> None:
    log = "\n".join(
        f"(TaskRunner pid=1) step:{s} - critic/score/mean:np.float64({r}) - timing_s/step:{t} - "
        f"perf/max_memory_allocated_gb:{m}"
        for s, r, t, m in ((1, 0.25, 12.5, 1.5), (2, 0.5, 3.25, 1.75))
    )
    stage = gpu_smoke.summarise("genrm_grpo", log, peak_mib=5120, wall_s=61.04)
    metrics = stage.pop("metrics")
    assert stage == {"stage": "genrm_grpo", "steps": 2, "step_time_s": [12.5, 3.25], "reward_mean": [0.25, 0.5],
                     "max_memory_allocated_gb": 1.75, "peak_gpu_memory_mib": 5120, "wall_s": 61.0}  # fmt: skip
    assert metrics["2"]["critic/score/mean"] == 0.5
    report = {"target": "cuda/vllm", "gpu": "GPU 0: H100", "stages": [{**stage, "metrics": metrics}],
              "checks": ["genrm_grpo: ok"], "problems": [], "status": "ok", "total_s": 61, "budget_s": 540}  # fmt: skip
    gpu_smoke.write_report(tmp_path, report)
    assert json.loads((tmp_path / "report.json").read_text())["stages"][0]["steps"] == 2
    md = (tmp_path / "report.md").read_text()
    assert "| genrm_grpo | 2 | [12.5, 3.25] | [0.25, 0.5] | 5120 | 1.75 | 61.0 |" in md
    assert md.startswith("# GPU smoke (cuda/vllm)") and "of a 540 s budget" in md
