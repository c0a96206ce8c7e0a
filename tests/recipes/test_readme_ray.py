"""The README's "On a Ray cluster" commands, run as written from a clean shell (no venv on PATH, a fresh HOME),
on a copy of the checkout: a real Ray head on loopback, `scripts/ray_submit.sh`, verl's trainer (PROFILE=cpu_tiny)
inside the Ray job, checkpoints in the checkout. Only the ports are added to `ray start` (this machine is shared,
so the defaults may be taken) and the head is stopped by its own processes instead of `ray stop` (which would
stop every Ray cluster on the machine).

It is also the suite's run of verl's main_ppo inside a Ray job (the former `test_cpu_profile_via_ray_job_submit`
ran the same job a second time): from the job's own log, both steps and their reward keys, rollouts from the
freshly pushed weights, and a checkpoint that merges to an HF model whose weights moved. That every rollout was
scored by our function is proven on the local route (tests/recipes/test_gpu_smoke.py, the dress rehearsal)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from omni_rl.testing.servers import RayHead, free_port
from omni_rl.testing.verl_env import recipe_env
from omni_rl.testing.verl_runs import check_merged, check_steps

REPO = Path(__file__).resolve().parents[2]


def readme_block(section: str, after: str | None = None) -> list[str]:
    """Command lines (comments stripped, continuations joined) of the first ```bash block of a README section."""
    text = (REPO / "README.md").read_text()
    body = text[text.index(f"## {section}\n") :]
    body = body[: body.index("\n## ", 4)]
    if after:
        body = body[body.index(after) :]
    block = re.search(r"```bash\n(.*?)```", body, flags=re.S)
    assert block, f"README section {section!r} has no bash block"
    joined = block.group(1).replace("\\\n", " ")
    lines = [re.sub(r"\s+#.*$", "", ln).strip() for ln in joined.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def _checkout_copy(tmp: Path) -> Path:
    """The checkout's files (tracked and new, not ignored) under tmp/main, .venv linked, ../shared beside it."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()  # fmt: skip
    copy = tmp / "main"
    for rel in files:
        src = REPO / rel
        if src.is_file():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, copy / rel)
    (copy / ".venv").symlink_to(REPO / ".venv")
    (tmp / "shared").symlink_to(REPO.parent / "shared")
    return copy


@pytest.mark.ray
@pytest.mark.slow
def test_readme_ray_cluster_route_runs_as_written(tmp_path: Path) -> None:
    data_step = [
        ln for ln in readme_block("Try it on CPU") if "recipes/" not in ln and "model_merger" not in ln
    ]
    assert any("data prepare" in ln for ln in data_step)
    ray_block = readme_block("On a Ray cluster", after="One machine")
    assert any(ln.startswith("ray start --head") for ln in ray_block)
    assert any("scripts/ray_submit.sh recipes/train_genrm.sh" in ln for ln in ray_block)
    # a short temp dir: Ray's socket paths under it must stay within AF_UNIX's 107 bytes
    gcs, dash, temp = free_port(), free_port(), Path(tempfile.mkdtemp(prefix="omni-rl-ray-"))
    ports = (f" --port={gcs} --dashboard-port={dash} --dashboard-agent-listen-port={free_port()}"
             f" --ray-client-server-port={free_port()} --temp-dir={temp}")  # fmt: skip
    script = ["set -euo pipefail", *data_step]
    for ln in ray_block:
        script.append(ln + ports if ln.startswith("ray start --head") else ln)
        if ln.startswith("ray start --head"):
            script.append(f"export RAY_ADDRESS=http://127.0.0.1:{dash}")
    copy = _checkout_copy(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    # RAY_memory_monitor_refresh_ms=0: on this shared 24 GiB machine other sessions' servers fill memory, and
    # Ray's own monitor then kills the job supervisor before verl starts (seen); the kernel still guards
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_memory_monitor_refresh_ms": "0",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}  # fmt: skip
    try:
        proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=copy, env=env, capture_output=True,
                              text=True, timeout=1500)  # fmt: skip
    finally:
        RayHead(gcs_port=gcs, temp_dir=str(temp)).stop()
        shutil.rmtree(temp, ignore_errors=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "succeeded" in out  # `ray job submit` waits for the job and reports its end
    ckpt = copy / "checkpoints" / "omni_rl_genrm" / "cpu_tiny_ray"
    assert (ckpt / "global_step_2" / "actor").is_dir(), out[-3000:]  # in the checkout, not Ray's temp folder
    assert (ckpt / "omni_rl_job.json").exists()
    assert (home / ".ray" / "auth_token").exists()  # token auth on, as the README says
    assert "resume: no checkpoint in" in out and "-> training from scratch" in out
    # verl's trainer inside the Ray job: steps, our reward's keys, fresh weights, a checkpoint that trained
    check_steps(out, 2, ("reward_extra/format/mean",))
    model = copy / ".cache" / "tiny-models" / "tiny-qwen2"
    check_merged(ckpt / "global_step_2" / "actor", model, tmp_path / "hf", recipe_env("cpu_tiny"))
