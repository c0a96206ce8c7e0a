# Sourced by the recipe scripts (never run on its own); the caller sets HERE to the recipes/ folder.
#
# PYTHON: the project's interpreter, found without PATH tricks: $PYTHON if set, the active venv, then
# .venv of OMNI_RL_ROOT (the checkout that holds .venv, data/, .cache/, checkpoints/; under `ray job submit`
# the job runs in an uploaded copy without them and scripts/ray_submit.sh sets it), then .venv of this
# checkout, then python3 on PATH.
# use_cpu_profile: a cpu_* profile loads omni_rl.cpu (VERL_PLATFORM=cpu, VERL_USE_EXTERNAL_MODULES); gpu_hf loads
# only the hf_cpu rollout plug-in.
# preflight <config-name> "$@": omni_rl.utils.launch picks the attention implementation, logs the resume
# decision (refusing another job's checkpoint), and under Ray makes the recipe's paths absolute. Its
# overrides go before "$@", so the user's arguments still win.
OMNI_RL_REPO="$(cd "$HERE/.." && pwd)"

omni_rl_python() {
  local root
  if [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/python" ]]; then echo "$VIRTUAL_ENV/bin/python"; return; fi
  for root in "${OMNI_RL_ROOT:-}" "$OMNI_RL_REPO"; do
    if [[ -n "$root" && -x "$root/.venv/bin/python" ]]; then echo "$root/.venv/bin/python"; return; fi
  done
  command -v python3 && return
  echo "omni-rl: no python found: run \`make setup\` (creates .venv) or set PYTHON=/path/to/python" >&2
  return 1
}
PYTHON="${PYTHON:-$(omni_rl_python)}"
PROFILE_ARGS=()
if [[ -n "${PROFILE:-}" ]]; then PROFILE_ARGS=("+profile=[${PROFILE}]"); fi

add_verl_module() {  # add_verl_module <module>: load it in every verl process (once)
  [[ ",${VERL_USE_EXTERNAL_MODULES:-}," == *,"$1",* ]] ||
    export VERL_USE_EXTERNAL_MODULES="${VERL_USE_EXTERNAL_MODULES:+$VERL_USE_EXTERNAL_MODULES,}$1"
}

use_cpu_profile() {  # a cpu_* profile loads omni_rl.cpu in every verl process: CPU platform, gloo, hf_cpu
  # gpu_hf (CUDA without vLLM): only the hf_cpu rollout, verl's platform stays CUDA
  if [[ ",${PROFILE:-}," == *,gpu_hf,* ]]; then add_verl_module omni_rl.cpu.rollout_plugin; fi
  [[ ",${PROFILE:-}" == *,cpu_* ]] || return 0
  export VERL_PLATFORM=cpu
  add_verl_module omni_rl.cpu.plugin
}

preflight() {
  local name="$1" out
  shift
  # (without VERL_USE_EXTERNAL_MODULES: composing the config needs no plug-ins, and importing them is slow)
  out="$(env -u VERL_USE_EXTERNAL_MODULES "$PYTHON" -m omni_rl.utils.launch --config-dir "$HERE/config" --config-name "$name" -- \
    ${PROFILE_ARGS[@]+"${PROFILE_ARGS[@]}"} "$@")" || exit $?
  PREFLIGHT_ARGS=()
  if [[ -n "$out" ]]; then mapfile -t PREFLIGHT_ARGS <<< "$out"; fi
}
