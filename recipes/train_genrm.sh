#!/usr/bin/env bash
# Train the generative reward model (GenRM) with GRPO on verl 0.9.1.
#
#   omni-rl data prepare ... out_dir=data/genrm          # writes data/genrm/{train,val}.parquet
#   bash recipes/train_genrm.sh                          # Qwen2.5-VL-7B, 8 GPUs (recipes/config/genrm_grpo.yaml)
#   PROFILE=smoke bash recipes/train_genrm.sh            # 1 GPU, Qwen2.5-VL-3B, 5 steps
#   PROFILE=qwen2_5_vl_3b,frozen_vision bash recipes/train_genrm.sh trainer.n_gpus_per_node=4
#   bash recipes/train_genrm.sh trainer.total_epochs=1 --cfg job   # print the composed config, exit
#     (Hydra flags such as --cfg job go after the key=value overrides)
#   ray job submit --address=http://127.0.0.1:8265 --working-dir . \
#     --runtime-env recipes/ray_runtime_env.yaml -- bash recipes/train_genrm.sh
#
# PROFILE: comma-separated names of recipes/config/profile/<name>.yaml, applied in order over the base
# yaml. Any Hydra key=value argument overrides both. Run from the repository root (the reward path
# reward_fns/genrm.py is relative to it; under `ray job submit` the working dir is the root).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"  # PYTHON (the project venv), PROFILE_ARGS, preflight
# Registers omni_rl.rl's policy loss / advantage estimator in every verl process (driver and workers).
export VERL_USE_EXTERNAL_MODULES="${VERL_USE_EXTERNAL_MODULES:-omni_rl.rl}"
# PROFILE=cpu_tiny (any cpu_* profile): also load omni_rl.cpu (verl's CPU platform, gloo, HF-generate
# rollout) in every verl process.
use_cpu_profile
preflight genrm_grpo "$@"  # attention implementation, resume decision, absolute paths under Ray

exec "$PYTHON" -m verl.trainer.main_ppo --config-path="$HERE/config" --config-name=genrm_grpo \
  ${PROFILE_ARGS[@]+"${PROFILE_ARGS[@]}"} ${PREFLIGHT_ARGS[@]+"${PREFLIGHT_ARGS[@]}"} "$@"
