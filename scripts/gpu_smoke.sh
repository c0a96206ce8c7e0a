#!/usr/bin/env bash
# `make gpu-smoke`: 2 GRPO steps of the GenRM job and of the policy job on one CUDA GPU, vLLM rollout, GenRM
# reward, tiny models built locally; report in outputs/gpu_smoke/report.md (< 10 minutes). Details and
# `--plan` (any machine: builds the inputs and composes both launches): scripts/gpu_smoke.py.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/../recipes" && pwd)"
source "$HERE/lib.sh"  # PYTHON: the project venv
cd "$HERE/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
exec timeout 600 "$PYTHON" scripts/gpu_smoke.py "$@"
