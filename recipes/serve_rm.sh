#!/usr/bin/env bash
# Serve a trained Omni-RewardModel with vLLM's OpenAI server for reward_fns/omni.py (external mode).
#
#   bash recipes/serve_rm.sh /ckpt/omni-rm/hf                     # 127.0.0.1:8000, served as "omni-rm"
#   PORT=8001 NAME=rm TP=2 bash recipes/serve_rm.sh /ckpt/omni-rm/hf
#   HOST=0.0.0.0 bash recipes/serve_rm.sh ...                      # other machines (no auth: firewall it)
#   bash recipes/serve_rm.sh /ckpt/omni-rm/hf dry_run=true          # print the command only
# then: RM=external JUDGE_URL=http://127.0.0.1:8000/v1 JUDGE_MODEL=omni-rm bash recipes/align_policy.sh
# Extra key=value arguments go to `omni-rl serve` (omni_rl/serve.py: max_model_len, limit_images, ...).
# `omni-rl serve` finds vLLM itself (.venv-vllm on CPU machines, with the CPU flags; this venv on GPU).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"  # PYTHON: the project venv
MODEL="${1:?usage: serve_rm.sh <model path> [key=value ...]}"
shift
exec "$PYTHON" -m omni_rl.cli serve "model=${MODEL}" "served_model_name=${NAME:-omni-rm}" \
  "host=${HOST:-127.0.0.1}" "port=${PORT:-8000}" "tensor_parallel_size=${TP:-1}" "$@"
