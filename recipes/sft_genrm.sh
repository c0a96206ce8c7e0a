#!/usr/bin/env bash
# Cold-start SFT of the GenRM on reasoning traces (recipes/config/genrm_sft.yaml), verl's SFT trainer.
#
#   NPROC=8 bash recipes/sft_genrm.sh                               # Qwen2.5-VL-7B on 8 GPUs
#   NPROC=1 bash recipes/sft_genrm.sh model.path=Qwen/Qwen2.5-VL-3B-Instruct trainer.n_gpus_per_node=1
#   bash recipes/sft_genrm.sh --cfg job                             # print the composed config and exit
#
# Any Hydra key=value argument overrides the yaml. Run from the repository root.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
NPROC="${NPROC:-8}"
# PROFILE=a,b: recipes/config/profile/<name>.yaml over the base yaml. A cpu_* profile (cpu_sft) also loads
# omni_rl.cpu in every torchrun process: verl's CPU platform, gloo, FSDP engines on "cpu".
PROFILE_ARGS=()
if [[ -n "${PROFILE:-}" ]]; then PROFILE_ARGS=("+profile=[${PROFILE}]"); fi
if [[ ",${PROFILE:-}" == *,cpu_* ]]; then
  export VERL_PLATFORM=cpu
  [[ ",${VERL_USE_EXTERNAL_MODULES:-}," == *,omni_rl.cpu.plugin,* ]] ||
    export VERL_USE_EXTERNAL_MODULES="${VERL_USE_EXTERNAL_MODULES:+$VERL_USE_EXTERNAL_MODULES,}omni_rl.cpu.plugin"
fi

if [[ " $* " == *" --cfg "* ]]; then  # config printing needs no process group
  exec "$PYTHON" -m verl.trainer.sft_trainer --config-path="$HERE/config" --config-name=genrm_sft \
    ${PROFILE_ARGS[@]+"${PROFILE_ARGS[@]}"} "$@"
fi
exec "$PYTHON" -m torch.distributed.run --standalone --nnodes=1 --nproc_per_node="$NPROC" \
  -m verl.trainer.sft_trainer --config-path="$HERE/config" --config-name=genrm_sft \
  ${PROFILE_ARGS[@]+"${PROFILE_ARGS[@]}"} "$@"
