#!/usr/bin/env bash
# Align a Qwen2.5-VL policy with GRPO, rewarded by a trained Omni-RewardModel (reward_fns/omni.py).
#
#   bash recipes/align_policy.sh                                   # GenRM in verl's reward model pool (standalone)
#   bash recipes/align_policy.sh reward.reward_model.model_path=/ckpt/omni-rm/hf
#   RM=external JUDGE_URL=http://127.0.0.1:8000/v1 JUDGE_MODEL=omni-rm bash recipes/align_policy.sh
#       (GenRM on an external vLLM server: start it with `bash recipes/serve_rm.sh /ckpt/omni-rm/hf`; the
#        reward-model pool is then released, so all N_GPUS (default 8) train the policy)
#   PROFILE=cpu_tiny RM=external JUDGE_URL=... bash recipes/align_policy.sh   # profiles as in train_genrm.sh
#   bash recipes/align_policy.sh reward.reward_manager.name=GroupWinRateRewardManager \
#       +reward.custom_reward_function.reward_kwargs.group.scheme=anchor      # Pref-GRPO group win rate
#   bash recipes/align_policy.sh --cfg job                         # print the composed config, exit
#   bash scripts/ray_submit.sh recipes/align_policy.sh ...         # on a Ray cluster (README: "On a Ray cluster")
#
# Config: recipes/config/align_policy.yaml (verl 0.9 reward.* keys only). Any Hydra key=value argument
# overrides it. Checkpoints: checkpoints/omni_rl_align/<experiment_name> (never the GenRM job's folder).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"  # PYTHON (the project venv), PROFILE_ARGS, preflight
export VERL_USE_EXTERNAL_MODULES="${VERL_USE_EXTERNAL_MODULES:-omni_rl.rl}"
use_cpu_profile  # PROFILE=cpu_*: omni_rl.cpu in every verl process
RM="${RM:-pool}"
EXTRA=()
case "$RM" in
  pool) ;;
  external)
    : "${JUDGE_URL:?RM=external needs JUDGE_URL, e.g. http://127.0.0.1:8000/v1 (recipes/serve_rm.sh)}"
    # no reward model in verl: neither its workers nor its GPU pool (else 6 + 2 reserved GPUs stay asked for)
    EXTRA=(reward.reward_model.enable=false reward.reward_model.enable_resource_pool=false
           "+reward.custom_reward_function.reward_kwargs.base_url=${JUDGE_URL}"
           "+reward.custom_reward_function.reward_kwargs.model=${JUDGE_MODEL:-auto}")
    # the policy gets the whole node, unless a profile sizes it (PROFILE=cpu_tiny: 1) or N_GPUS is given
    if [[ -n "${N_GPUS:-}" || -z "${PROFILE:-}" ]]; then EXTRA+=(trainer.n_gpus_per_node="${N_GPUS:-8}"); fi
    ;;
  *) echo "RM must be pool or external, got '$RM'" >&2; exit 2 ;;
esac
preflight align_policy ${EXTRA[@]+"${EXTRA[@]}"} "$@"

exec "$PYTHON" -m verl.trainer.main_ppo --config-path="$HERE/config" --config-name=align_policy \
  ${PROFILE_ARGS[@]+"${PROFILE_ARGS[@]}"} ${PREFLIGHT_ARGS[@]+"${PREFLIGHT_ARGS[@]}"} ${EXTRA[@]+"${EXTRA[@]}"} "$@"
