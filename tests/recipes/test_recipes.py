"""Recipes compose with verl's real Hydra config using exactly the arguments the scripts pass; no key is
unknown, legacy or silently ignored; verl's own config validation accepts them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from omni_rl.rl.recipe import Launch, capture_launch, check_launch

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "recipes" / "train_genrm.sh"
SFT = REPO / "recipes" / "sft_genrm.sh"
PPO_BASE = ["actor_rollout_ref.rollout.name=vllm"]  # verl's ppo_trainer leaves this mandatory (???)

PROFILE_DIR = REPO / "recipes" / "config" / "profile"
PROFILES = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _genrm_profile(name: str) -> str | None:
    """PROFILE value for a GenRM GRPO profile: `# layer-over: X` composes X first; `# recipe: Y` (another
    recipe's profile, tested with that recipe) is skipped."""
    text = (PROFILE_DIR / f"{name}.yaml").read_text()
    recipe = re.search(r"^# recipe: (\w+)", text, re.M)
    if recipe and recipe.group(1) != "train_genrm":
        return None
    over = re.search(r"^# layer-over: (\w+)", text, re.M)
    return f"{over.group(1)},{name}" if over else name


TRAIN_CASES = {
    "default": ({}, []),
    **{f"profile:{prof}": ({"PROFILE": prof}, []) for prof in filter(None, map(_genrm_profile, PROFILES))},
    "smoke": ({"PROFILE": "smoke"}, []),
    "smoke+frozen+stable": ({"PROFILE": "smoke,frozen_vision,stable_reinforce"}, []),
    "3b": ({"PROFILE": "qwen2_5_vl_3b"}, ["trainer.n_gpus_per_node=4"]),
    "qwen3": ({"PROFILE": "qwen3_vl_8b"}, []),
    "user-overrides": ({}, ["data.train_files=/mnt/x.parquet", "+reward.custom_reward_function.reward_kwargs.tie_credit=0.5"]),
}  # fmt: skip


def _launch(script: Path, env: dict[str, str], args: list[str]) -> Launch:
    return capture_launch(script, args, env={"PROFILE": "", **env})


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_recipe_composes_cleanly_with_verl(case: str) -> None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    env, args = TRAIN_CASES[case]
    launch = _launch(TRAIN, env, args)
    assert launch.module == "verl.trainer.main_ppo" and launch.config_name == "genrm_grpo"
    cfg, problems = check_launch(launch, PPO_BASE)
    assert problems == []
    # verl's own checks, exactly as main_ppo runs them before training (CPU-safe: config only)
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    # (cfg.reward is left out: verl 0.9.1 own RewardManagerConfig fails to instantiate even on its defaults)
    for node in (cfg.actor_rollout_ref.rollout, cfg.algorithm):  # (model: would fetch the HF config)
        omega_conf_to_dataclass(node)
    assert "profile" not in cfg  # profiles are @package _global_ layers, not a config key
    reward = cfg.reward.custom_reward_function
    assert (reward.path, reward.name) == ("reward_fns/genrm.py", "compute_score")
    assert cfg.custom_reward_function.path is None  # the legacy top-level key stays unset
    actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    if "gpu_hf" in case:  # CUDA without vLLM: only the rollout is ours, verl stays on the GPU
        assert (rollout.name, cfg.trainer.device, actor.use_kl_loss) == ("hf_cpu", "cuda", True)
    elif "cpu_tiny" not in case:  # the CPU profile swaps the rollout and drops the reference model on purpose
        assert (rollout.name, actor.optim.lr) == ("vllm", 1e-6)
        assert (actor.use_kl_loss, actor.kl_loss_type) == (True, "low_var_kl")
    assert cfg.data.image_key == "images"
    if case == "user-overrides":
        assert cfg.data.train_files == "/mnt/x.parquet"
        assert cfg.reward.custom_reward_function.reward_kwargs.tie_credit == 0.5


def test_profiles_change_what_they_say() -> None:
    default, _ = check_launch(_launch(TRAIN, {}, []), PPO_BASE)
    smoke, _ = check_launch(
        _launch(TRAIN, {"PROFILE": "smoke,frozen_vision,stable_reinforce"}, ["trainer.total_epochs=3"]),
        PPO_BASE,
    )
    assert default.actor_rollout_ref.model.path == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert (default.actor_rollout_ref.rollout.n, default.algorithm.adv_estimator) == (8, "grpo")
    assert default.actor_rollout_ref.actor.freeze_vision_tower is False
    assert smoke.trainer.n_gpus_per_node == 1 and smoke.trainer.total_training_steps == 5
    assert "3B" in smoke.actor_rollout_ref.model.path
    assert smoke.actor_rollout_ref.actor.freeze_vision_tower is True
    assert smoke.algorithm.adv_estimator == "grpo_3sigma"
    assert smoke.actor_rollout_ref.actor.policy_loss.loss_mode == "stable_reinforce"
    assert smoke.trainer.total_epochs == 3  # "$@" comes last and wins


def test_stable_reinforce_profile_names_exist_in_verls_registries() -> None:
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn, get_policy_loss_fn

    import omni_rl.rl  # noqa: F401  (what VERL_USE_EXTERNAL_MODULES=omni_rl.rl does in each process)

    cfg, _ = check_launch(_launch(TRAIN, {"PROFILE": "stable_reinforce"}, []), PPO_BASE)
    assert get_policy_loss_fn(cfg.actor_rollout_ref.actor.policy_loss.loss_mode)
    assert get_adv_estimator_fn(cfg.algorithm.adv_estimator)


def test_sft_recipe_composes_cleanly_with_verl() -> None:
    from verl.utils.config import omega_conf_to_dataclass

    launch = _launch(SFT, {"NPROC": "2"}, ["trainer.total_epochs=1"])
    assert launch.module == "verl.trainer.sft_trainer"
    assert launch.argv[:2] == ["-m", "torch.distributed.run"] and "--nproc_per_node=2" in launch.argv
    cfg, problems = check_launch(launch)
    assert problems == []
    for node in (cfg.optim, cfg.engine, cfg.checkpoint):
        omega_conf_to_dataclass(node)
    assert cfg.data.messages_key == "messages" and cfg.trainer.total_epochs == 1


def test_the_checker_catches_legacy_unknown_and_ignored_keys(tmp_path: Path) -> None:
    launch = _launch(
        TRAIN, {}, ["custom_reward_function.path=reward_fns/genrm.py", "+actor_rollout_ref.actor.optim.lrr=1"]
    )
    _, problems = check_launch(launch, PPO_BASE)
    assert any("custom_reward_function.path: legacy top-level key" in p for p in problems)
    assert any("actor_rollout_ref.actor.optim.lrr: unknown" in p for p in problems)
    # a yaml that applies itself *before* verl's defaults: every key it sets is silently overwritten
    bad = tmp_path / "config"
    bad.mkdir()
    text = (REPO / "recipes" / "config" / "genrm_grpo.yaml").read_text()
    (bad / "genrm_grpo.yaml").write_text(
        text.replace("  - ppo_trainer\n  - _self_\n", "  - _self_\n  - ppo_trainer\n")
    )
    _, problems = check_launch(Launch("verl.trainer.main_ppo", bad, "genrm_grpo", [], []), PPO_BASE)
    assert any("actor_rollout_ref.rollout.n=8 is ignored" in p for p in problems)


def test_scripts_end_in_user_overrides_and_are_short() -> None:
    for script in (TRAIN, SFT):
        lines = [
            ln for ln in script.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")
        ]
        assert lines[-1].rstrip().endswith('"$@"'), script
        assert len(lines) <= 15, f"{script} should stay a thin launcher over its yaml"
        assert "custom_reward_function" not in script.read_text().replace("reward.custom_reward_function", "")


def test_runtime_env_excludes_data_and_checkpoints() -> None:
    env = yaml.safe_load((REPO / "recipes" / "ray_runtime_env.yaml").read_text())
    for must in ("data/", "checkpoints/", ".venv/", ".venv-vllm/", ".git/"):
        assert must in env["excludes"]
    assert env["env_vars"]["VERL_USE_EXTERNAL_MODULES"] == "omni_rl.rl"
    assert "working_dir" not in env  # given on the command line: --working-dir .


def test_recipe_yaml_only_sets_reward_through_verl09_keys() -> None:
    data = OmegaConf.to_container(OmegaConf.load(REPO / "recipes" / "config" / "genrm_grpo.yaml"))
    assert "custom_reward_function" not in data and "reward_model" not in data
    assert data["reward"]["custom_reward_function"]["path"] == "reward_fns/genrm.py"
