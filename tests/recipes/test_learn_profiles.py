"""The learn chain's CPU profiles compose cleanly with verl's own config for the recipe each one names:
cpu_sft with recipes/sft_genrm.sh (verl's SFT trainer), cpu_policy with recipes/align_policy.sh (main_ppo)."""

from __future__ import annotations

from pathlib import Path

from omni_rl.rl.recipe import capture_launch, check_launch

REPO = Path(__file__).resolve().parents[2]


def test_cpu_sft_profile_with_the_sft_recipe() -> None:
    from verl.utils.config import omega_conf_to_dataclass

    launch = capture_launch(REPO / "recipes/sft_genrm.sh", [], env={"PROFILE": "cpu_sft", "NPROC": "1"})
    assert launch.module == "verl.trainer.sft_trainer" and "--nproc_per_node=1" in launch.argv
    cfg, problems = check_launch(launch)
    assert problems == []
    engine = omega_conf_to_dataclass(cfg.engine)
    assert engine.mixed_precision["param_dtype"] == "fp32" and cfg.trainer.device == "cpu"
    assert cfg.trainer.resume_mode == "disable"


def test_cpu_policy_profile_with_the_policy_recipe() -> None:
    env = {
        "PROFILE": "cpu_policy",
        "RM": "external",
        "JUDGE_URL": "http://127.0.0.1:9/v1",
        "JUDGE_MODEL": "g",
    }
    launch = capture_launch(REPO / "recipes/align_policy.sh", [], env=env)
    cfg, problems = check_launch(launch, ["actor_rollout_ref.rollout.name=vllm"])
    assert problems == []
    assert cfg.actor_rollout_ref.rollout.name == "hf_cpu" and cfg.trainer.n_gpus_per_node == 1
    assert cfg.reward.reward_model.enable is False
    kwargs = cfg.reward.custom_reward_function.reward_kwargs
    assert kwargs.base_url == "http://127.0.0.1:9/v1" and kwargs.template.endswith("judge_compact.yaml")
