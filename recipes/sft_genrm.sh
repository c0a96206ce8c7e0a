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
source "$HERE/lib.sh"  # PYTHON (the project venv), PROFILE_ARGS (recipes/config/profile/<name>.yaml), preflight
NPROC="${NPROC:-8}"
use_cpu_profile  # PROFILE=cpu_sft: omni_rl.cpu in every torchrun process (CPU platform, gloo)
preflight genrm_sft "$@"  # attention implementation, resume decision, absolute paths under Ray
ARGS=(--config-path="$HERE/config" --config-name=genrm_sft ${PROFILE_ARGS[@]+"${PROFILE_ARGS[@]}"})
ARGS+=(${PREFLIGHT_ARGS[@]+"${PREFLIGHT_ARGS[@]}"})
if [[ " $* " == *" --cfg "* ]]; then  # config printing needs no process group
  exec "$PYTHON" -m verl.trainer.sft_trainer "${ARGS[@]}" "$@"
fi
exec "$PYTHON" -m torch.distributed.run --standalone --nnodes=1 --nproc_per_node="$NPROC" \
  -m verl.trainer.sft_trainer "${ARGS[@]}" "$@"
