#!/usr/bin/env bash
# Cold-start SFT of the GenRM on reasoning traces (recipes/config/genrm_sft.yaml), verl's SFT trainer.
#
#   NPROC=8 bash recipes/sft_genrm.sh                               # Qwen2.5-VL-7B on 8 GPUs
#   NPROC=1 bash recipes/sft_genrm.sh model.path=Qwen/Qwen2.5-VL-3B-Instruct trainer.n_gpus_per_node=1
#   NPROC=1 PROFILE=cpu_sft bash recipes/sft_genrm.sh              # CPU only: tiny model (make learn)
#   bash recipes/sft_genrm.sh --cfg job                             # print the composed config and exit
#
# Any Hydra key=value argument overrides the yaml. Run from the repository root. PROFILE=a,b applies
# recipes/config/profile/<name>.yaml; a cpu_* profile also loads omni_rl.cpu in every torchrun process
# (verl's CPU platform, a gloo process group, FSDP engines on "cpu").
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"  # PYTHON (the project venv), PROFILE_ARGS
NPROC="${NPROC:-8}"
use_cpu_profile  # PROFILE=cpu_*: omni_rl.cpu in the trainer (CPU platform, gloo)
SFT=(-m verl.trainer.sft_trainer --config-path="$HERE/config" --config-name=genrm_sft ${PROFILE_ARGS[@]+"${PROFILE_ARGS[@]}"})
if [[ " $* " == *" --cfg "* ]]; then exec "$PYTHON" "${SFT[@]}" "$@"; fi  # config printing: no process group
exec "$PYTHON" -m torch.distributed.run --standalone --nnodes=1 --nproc_per_node="$NPROC" "${SFT[@]}" "$@"
