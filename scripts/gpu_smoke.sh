#!/usr/bin/env bash
# `make gpu-smoke`: 2 GRPO steps of the GenRM job and of the policy job on one CUDA GPU, tiny models built
# locally; report in outputs/gpu_smoke/report.md. The script keeps its own time budget (--budget-s, 540 s on
# a GPU) and writes the report on SIGTERM too, so no outer `timeout` is needed (one would only cut the report).
#   bash scripts/gpu_smoke.sh                 # CUDA, vLLM rollout and a vLLM-served GenRM
#   bash scripts/gpu_smoke.sh --rollout hf    # CUDA without vLLM: verl + the project's HF rollout
#   bash scripts/gpu_smoke.sh --device cpu    # the dress rehearsal on CPU (make test runs it)
# Details and `--plan` (any machine: builds the inputs and composes the launches): scripts/gpu_smoke.py.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/../recipes" && pwd)"
source "$HERE/lib.sh"  # PYTHON: the project venv
cd "$HERE/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
exec "$PYTHON" scripts/gpu_smoke.py "$@"
