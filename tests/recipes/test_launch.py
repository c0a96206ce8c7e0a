"""Launch behaviour of the recipe scripts (recipes/lib.sh + omni_rl.utils.launch): the project venv is found
from a clean shell, attention follows what is installed, a job never resumes another job's checkpoint, and
RM=external releases the reward-model GPU pool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from omni_rl.rl.recipe import capture_launch, check_launch
from omni_rl.utils.launch import ATTN_KEY, JOB_FILE, compose

REPO = Path(__file__).resolve().parents[2]
TRAIN, ALIGN = REPO / "recipes" / "train_genrm.sh", REPO / "recipes" / "align_policy.sh"
PPO_BASE = ["actor_rollout_ref.rollout.name=vllm"]
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}


def _run(script: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """A recipe run from a clean shell (no venv on PATH), stopped before verl by `--cfg job`."""
    return subprocess.run(
        ["bash", str(script), *args, "--cfg", "job"],
        cwd=REPO, env={**CLEAN_ENV, **env}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_recipe_launch_carries_the_chosen_attention() -> None:
    launch = capture_launch(TRAIN, [], env={"PROFILE": ""})
    assert f"++{ATTN_KEY}=sdpa" in launch.overrides
    cfg, problems = check_launch(launch, PPO_BASE)
    assert problems == []
    assert cfg.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
    # the user still wins: their argument comes after the pre-flight's
    launch = capture_launch(TRAIN, [f"++{ATTN_KEY}=eager"], env={"PROFILE": ""})
    cfg, problems = check_launch(launch, PPO_BASE)
    assert problems == [] and cfg.actor_rollout_ref.model.override_config.attn_implementation == "eager"


def test_scripts_find_the_project_venv_from_a_clean_shell(tmp_path: Path) -> None:
    probe = 'HERE="$1/recipes"; source "$HERE/lib.sh"; echo "$PYTHON"'
    out = subprocess.run(["bash", "-c", probe, "_", str(REPO)], env=CLEAN_ENV, capture_output=True, text=True)
    assert out.stdout.strip() == str(REPO / ".venv" / "bin" / "python"), out.stderr
    # under `ray job submit` the checkout with the venv is OMNI_RL_ROOT, not the uploaded copy
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    env = {**CLEAN_ENV, "OMNI_RL_ROOT": str(tmp_path)}
    out = subprocess.run(["bash", "-c", probe, "_", str(REPO)], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == str(tmp_path / ".venv" / "bin" / "python")


def _checkpoint(folder: Path, step: int, recipe: str | None) -> None:
    """A checkpoint folder as verl's trainer leaves it (tracker file + global_step_N), with our job file."""
    (folder / f"global_step_{step}" / "actor").mkdir(parents=True)
    (folder / "latest_checkpointed_iteration.txt").write_text(str(step))
    if recipe:
        (folder / JOB_FILE).write_text(json.dumps({"recipe": recipe, "profiles": "cpu_tiny", "model": "m"}))


def test_a_job_refuses_to_resume_another_jobs_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    _checkpoint(ckpt, 2, "genrm_grpo")
    args = [f"trainer.default_local_dir={ckpt}"]
    proc = _run(ALIGN, args, {"PROFILE": "cpu_tiny", "RM": "external", "JUDGE_URL": "http://127.0.0.1:9/v1"})
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "refusing to launch" in proc.stderr and "global_step_2 of another job (genrm_grpo" in proc.stderr
    assert "trainer.resume_mode=disable" in proc.stderr  # says what to do
    # the same recipe resumes, and says so; a finished run is flagged as training nothing
    proc = _run(TRAIN, args, {"PROFILE": "cpu_tiny"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "holds global_step_2 of this job -> verl resumes from step 2" in proc.stderr
    assert "total_training_steps=2 is already reached, so it will train nothing" in proc.stderr
    # resume_mode=disable: the user chose to start over; nothing is refused
    proc = _run(ALIGN, [*args, "trainer.resume_mode=disable"], {"PROFILE": "cpu_tiny", "RM": "external",
                                                                "JUDGE_URL": "http://127.0.0.1:9/v1"})  # fmt: skip
    assert proc.returncode == 0 and "resume: trainer.resume_mode=disable" in proc.stderr


def test_the_preflight_records_the_job_and_logs_a_fresh_start(tmp_path: Path) -> None:
    ckpt = tmp_path / "fresh"
    cmd = [sys.executable, "-m", "omni_rl.utils.launch", "--config-dir", str(REPO / "recipes" / "config"),
           "--config-name", "genrm_grpo", "--", "+profile=[cpu_tiny]", f"trainer.default_local_dir={ckpt}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"resume: no checkpoint in {ckpt} -> training from scratch" in proc.stderr
    job = json.loads((ckpt / JOB_FILE).read_text())
    assert job["recipe"] == "genrm_grpo" and job["profiles"] == "cpu_tiny"
    assert job["model"] == ".cache/tiny-models/tiny-qwen2"


def test_default_checkpoint_folders_differ_per_recipe_under_every_shared_profile() -> None:
    config = REPO / "recipes" / "config"
    profiles = ["", *sorted(p.stem for p in (config / "profile").glob("*.yaml"))]
    checked = 0
    for name in profiles:
        if name and "project_name:" in (config / "profile" / f"{name}.yaml").read_text():
            continue  # a profile written for one recipe names its project itself (cpu_policy, cpu_sft)
        ov = [f"+profile=[{name}]"] if name else []
        try:
            dirs = {c: compose(config, c, [*ov, *PPO_BASE]).trainer.default_local_dir
                    for c in ("genrm_grpo", "align_policy")}  # fmt: skip
        except Exception:  # a profile written for one recipe only (e.g. SFT keys)
            continue
        assert dirs["genrm_grpo"] != dirs["align_policy"], (name, dirs)
        checked += 1
    assert checked >= 5  # default + the shared GPU/CPU profiles


def _gpus_verl_reserves(cfg) -> int:
    """The GPUs verl's PPO trainer asks Ray for: its own resource-pool builder on this config."""
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    class Probe(PPOTrainer):  # only the resource-pool builder is used; the step hooks are never called
        def on_sample_end(self, *args, **kwargs) -> None: ...

        def on_step_end(self, *args, **kwargs) -> None: ...

    trainer = object.__new__(Probe)
    trainer.config = cfg
    trainer._init_resource_pool_mgr()
    return sum(sum(pool) for pool in trainer.resource_pool_manager.resource_pool_spec.values())


def test_external_reward_model_releases_the_reward_pool() -> None:
    external = {"RM": "external", "JUDGE_URL": "http://127.0.0.1:8000/v1", "PROFILE": ""}
    cfg, problems = check_launch(capture_launch(ALIGN, [], env=external), PPO_BASE)
    assert problems == []
    assert cfg.reward.reward_model.enable is False and cfg.reward.reward_model.enable_resource_pool is False
    assert _gpus_verl_reserves(cfg) == 8  # one 8-GPU node, all for the policy (was 8 + 2)
    pool, _ = check_launch(capture_launch(ALIGN, [], env={"RM": "pool", "PROFILE": ""}), PPO_BASE)
    assert _gpus_verl_reserves(pool) == 8  # 6 policy + 2 reward model
    cpu, problems = check_launch(capture_launch(ALIGN, [], env={**external, "PROFILE": "cpu_tiny"}), PPO_BASE)
    assert problems == [] and _gpus_verl_reserves(cpu) == 1  # the profile sizes it, not the 8-GPU default


@pytest.mark.slow
def test_relative_paths_become_absolute_under_a_ray_job_copy(tmp_path: Path) -> None:
    """Run from a copy without data/ (what `ray job submit --working-dir .` uploads), with OMNI_RL_ROOT set."""
    copy = tmp_path / "upload"
    shutil.copytree(REPO / "recipes", copy / "recipes")
    root = tmp_path / "checkout"
    (root / "data" / "genrm_cpu").mkdir(parents=True)
    (root / "data" / "genrm_cpu" / "train.parquet").write_bytes(b"")
    env = {"PROFILE": "cpu_tiny", "OMNI_RL_ROOT": str(root), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(copy / "recipes" / "train_genrm.sh"), "--cfg", "job"],
                          cwd=copy, env={**CLEAN_ENV, **env}, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"train_files: {root}/data/genrm_cpu/train.parquet" in proc.stdout
    # (Hydra prints interpolations unresolved: the user's experiment_name still names the folder)
    assert (
        f"default_local_dir: {root}/checkpoints/${{trainer.project_name}}/${{trainer.experiment_name}}"
        in proc.stdout
    )
    assert "path: .cache/tiny-models/tiny-qwen2" in proc.stdout  # not in the checkout: left as given
    # a relative path the user passes cannot be fixed silently: refused, with the absolute one to use
    proc = subprocess.run(["bash", str(copy / "recipes" / "train_genrm.sh"),
                           "data.train_files=data/genrm_cpu/train.parquet", "--cfg", "job"],
                          cwd=copy, env={**CLEAN_ENV, **env}, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert (
        proc.returncode == 3 and f"pass data.train_files={root}/data/genrm_cpu/train.parquet" in proc.stderr
    )


def test_preflight_composes_without_importing_verl_or_torch() -> None:
    """Every launch pays the pre-flight: verl's yaml is read by path (no `import verl`), with the same result."""
    from omni_rl.rl.recipe import compose as recipe_compose

    overrides = ["+profile=[cpu_tiny]", "trainer.total_training_steps=3"]
    ours = compose(REPO / "recipes" / "config", "genrm_grpo", overrides)
    hydra_pkg = recipe_compose(
        REPO / "recipes" / "config", "genrm_grpo", overrides
    )  # pkg://verl.trainer.config
    assert ours == hydra_pkg and ours.trainer.total_training_steps == 3
    code = (
        "import sys; from omni_rl.utils import launch; "
        f"rc = launch.main(['--config-dir', {str(REPO / 'recipes' / 'config')!r}, '--config-name', 'genrm_grpo', "
        "'--', '+profile=[cpu_tiny]', '--cfg', 'job']); "
        "print('IMPORTED', sorted(m for m in ('verl', 'torch', 'ray') if m in sys.modules)); sys.exit(rc)"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "IMPORTED []" in res.stdout and "attention: sdpa" in res.stderr
