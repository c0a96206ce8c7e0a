#!/usr/bin/env bash
# Best-of-N with a trained GenRM: a policy and the RM, each behind an OpenAI-compatible vLLM server.
#
#   POLICY=Qwen/Qwen2.5-VL-7B-Instruct RM=ckpt/genrm-hf INPUT=data/bon/mcq.jsonl bash recipes/bon.sh
#   bash recipes/bon.sh policy.n=16 'sweep=[1,2,4,8,16]' judge.template=pairwise_no_tie   # any key=value
#
# Starts a vLLM server (`omni-rl serve`: the CPU flags on a CPU machine, max_model_len from the model's
# config) for the policy (port 8000) unless POLICY_URL is set, and for the GenRM (port 8001) unless RM_URL
# is set -- e.g. point RM_URL at a GenRM already started with recipes/serve_rm.sh. POLICY_ARGS / RM_ARGS:
# extra `omni-rl serve` key=value options (max_model_len=4096 gpu_memory_utilization=0.4 ...). The
# GenRM folder is what `python -m verl.model_merger merge` (or `omni-rl merge`) writes from a GRPO run.
# DRY_RUN=1 prints the server and bon commands instead of running them.
# Re-running the same command resumes: finished prompts are not sampled or judged again.
# Rows with `answer` get an accuracy report (pick vs first sample / random / oracle, per N) + PNG.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"  # PYTHON: the project venv
: "${INPUT:?set INPUT=<prompts jsonl: prompt, [id, images, videos, audios, criteria, answer]>}"
OUT="${OUT:-outputs/bon/$(basename "${INPUT%.*}").jsonl}"
PIDS=()
cleanup() { for p in ${PIDS[@]+"${PIDS[@]}"}; do kill -- "-$p" 2>/dev/null || true; done; }  # whole group
serve() {  # serve <key=value ...>: a vLLM server in its own process group (it forks an engine core)
  if [[ "${DRY_RUN:-0}" == 1 ]]; then "$PYTHON" -m omni_rl.cli serve "$@" dry_run=true; return; fi
  setsid "$PYTHON" -m omni_rl.cli serve "$@" &
  PIDS+=($!)
}
trap cleanup EXIT

wait_up() {  # wait_up <base_url> : poll /health of a vLLM server
  local root="${1%/v1}"
  for _ in $(seq 1 600); do curl -sf "$root/health" >/dev/null && return 0; sleep 2; done
  echo "server $root did not come up" >&2; return 1
}

if [[ -z "${POLICY_URL:-}" ]]; then
  : "${POLICY:?set POLICY=<policy model> or POLICY_URL=http://host:port/v1}"
  serve model="$POLICY" served_model_name=policy port="${POLICY_PORT:-8000}" seed=0 ${POLICY_ARGS:-}
  POLICY_URL="http://127.0.0.1:${POLICY_PORT:-8000}/v1"
fi
if [[ -z "${RM_URL:-}" ]]; then
  : "${RM:?set RM=<GenRM folder> or RM_URL=http://host:port/v1}"
  serve model="$RM" served_model_name=genrm port="${RM_PORT:-8001}" seed=0 ${RM_ARGS:-}
  RM_URL="http://127.0.0.1:${RM_PORT:-8001}/v1"
fi
BON=("$PYTHON" -m omni_rl.cli bon)
if [[ "${DRY_RUN:-0}" == 1 ]]; then BON=(echo "$PYTHON" -m omni_rl.cli bon); else wait_up "$POLICY_URL"; wait_up "$RM_URL"; fi

"${BON[@]}" input="$INPUT" output="$OUT" \
  policy.base_url="$POLICY_URL" policy.model="${POLICY_NAME:-policy}" policy.n=8 \
  judge.base_url="$RM_URL" judge.model="${RM_NAME:-genrm}" judge.template=pairwise_tie judge.debias=true \
  'strategies=[pointwise,knockout,round_robin]' 'sweep=[1,2,4,8]' "$@"
