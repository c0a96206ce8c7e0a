"""`make gpu-smoke` proven as far as a CPU machine can: it refuses without CUDA, its two launches (GenRM GRPO and
policy GRPO with RM=external, PROFILE=gpu_tiny) compose cleanly with verl's config on inputs it builds locally,
and its report reads verl's console metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import gpu_smoke  # noqa: E402


def test_gpu_smoke_refuses_without_cuda(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_smoke.sh"), "--out", str(tmp_path)],
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stdout
    assert "--plan" in proc.stdout  # says what to run instead


@pytest.mark.slow
def test_gpu_smoke_plan_builds_inputs_and_composes_both_launches(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_smoke.py"), "--plan", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    plans = [ln for ln in proc.stdout.splitlines() if ln.startswith("[gpu-smoke] plan:")]
    assert len(plans) == 2 and all("rollout=vllm, steps=2, gpus=1" in p for p in plans)
    assert "recipes/align_policy.sh" in plans[1] and "'RM': 'external'" in plans[1]
    assert "plan problem" not in proc.stdout
    for parquet in ("genrm_data/train.parquet", "policy_data/train.parquet"):
        assert (tmp_path / parquet).stat().st_size > 0


def test_report_from_verl_console_lines(tmp_path: Path) -> None:
    log = "\n".join(
        f"(TaskRunner pid=1) step:{s} - critic/score/mean:np.float64({r}) - timing_s/step:{t} - "
        f"perf/max_memory_allocated_gb:{m}"
        for s, r, t, m in ((1, 0.25, 12.5, 1.5), (2, 0.5, 3.25, 1.75))
    )
    stage = gpu_smoke.summarise("genrm_grpo", log, peak_mib=5120, wall_s=61.04)
    assert stage == {"stage": "genrm_grpo", "steps": 2, "step_time_s": [12.5, 3.25], "reward_mean": [0.25, 0.5],
                     "max_memory_allocated_gb": 1.75, "peak_gpu_memory_mib": 5120, "wall_s": 61.0}  # fmt: skip
    gpu_smoke.write_report(tmp_path, {"gpu": "GPU 0: H100", "stages": [stage], "status": "ok", "total_s": 61})
    assert json.loads((tmp_path / "report.json").read_text())["stages"][0]["steps"] == 2
    md = (tmp_path / "report.md").read_text()
    assert "| genrm_grpo | 2 | [12.5, 3.25] | [0.25, 0.5] | 5120 | 1.75 | 61.0 |" in md
