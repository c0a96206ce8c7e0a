#!/usr/bin/env bash
# Submit a recipe to a running Ray cluster as a Ray job, from a clean shell (README: "On a Ray cluster").
#
#   bash scripts/ray_submit.sh recipes/train_genrm.sh [key=value ...]
#   PROFILE=cpu_tiny bash scripts/ray_submit.sh recipes/train_genrm.sh
#   RAY_ADDRESS=http://HEAD_IP:8265 RM=external JUDGE_URL=http://HOST:8000/v1 bash scripts/ray_submit.sh recipes/align_policy.sh
#
# It runs `ray job submit --working-dir <this checkout> --runtime-env <recipes/ray_runtime_env.yaml + env>`
# and adds what a bare `ray job submit --working-dir .` gets wrong:
#  - OMNI_RL_ROOT=<this checkout>: the job runs in an uploaded copy without .venv/, .cache/, data/ and
#    checkpoints/. The recipe takes its python from OMNI_RL_ROOT/.venv and makes its relative data, model
#    and checkpoint paths absolute there, so checkpoints land in this checkout, not in Ray's temp folder.
#    With several machines, this path must hold the same files on every node (shared filesystem or image).
#  - the recipe's knobs (PROFILE, RM, JUDGE_URL, JUDGE_MODEL, N_GPUS) and, for a cpu_* profile, the
#    variables that load omni_rl.cpu in every Ray worker (VERL_USE_EXTERNAL_MODULES, VERL_PLATFORM);
#  - ray_kwargs.ray_init.{num_cpus,num_gpus,include_dashboard}=null: verl joins the cluster, not sizes one;
#  - RAY_AUTH_MODE=token when ~/.ray/auth_token exists and RAY_AUTH_MODE is unset: a cluster started
#    after any local `ray.init()` on this machine requires the token, and the CLI does not send it by itself.
# RAY_ADDRESS (default http://127.0.0.1:8265) is the head's dashboard/job address.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT="${1:?usage: scripts/ray_submit.sh recipes/<script>.sh [key=value ...]}"
shift
HERE="$REPO/recipes"
source "$HERE/lib.sh"  # PYTHON: the project venv
RAY_BIN="$(dirname "$PYTHON")/ray"
[[ -x "$RAY_BIN" ]] || RAY_BIN="$(command -v ray)"
if [[ -z "${RAY_AUTH_MODE:-}" && -f "$HOME/.ray/auth_token" ]]; then export RAY_AUTH_MODE=token; fi
SCRIPT_REL="$(realpath --relative-to="$REPO" "$SCRIPT")"
ENV_FILE="$REPO/.cache/ray_submit/runtime_env.yaml"
mkdir -p "$(dirname "$ENV_FILE")"
"$PYTHON" - "$REPO" "$ENV_FILE" <<'PY'
import os, sys, yaml
repo, out = sys.argv[1], sys.argv[2]
env = yaml.safe_load(open(f"{repo}/recipes/ray_runtime_env.yaml"))
env_vars = env.setdefault("env_vars", {})
env_vars["OMNI_RL_ROOT"] = repo
for key in ("PROFILE", "RM", "JUDGE_URL", "JUDGE_MODEL", "N_GPUS"):
    if os.environ.get(key):
        env_vars[key] = os.environ[key]
if any(p.startswith("cpu_") for p in os.environ.get("PROFILE", "").split(",")):
    env_vars["VERL_USE_EXTERNAL_MODULES"] = "omni_rl.rl,omni_rl.cpu.plugin"
    env_vars["VERL_PLATFORM"] = "cpu"
yaml.safe_dump(env, open(out, "w"), sort_keys=False)
PY
echo "[ray_submit] $SCRIPT_REL on ${RAY_ADDRESS:-http://127.0.0.1:8265} (runtime env: $ENV_FILE)"
exec "$RAY_BIN" job submit --address "${RAY_ADDRESS:-http://127.0.0.1:8265}" --working-dir "$REPO" \
  --runtime-env "$ENV_FILE" -- bash "$SCRIPT_REL" ++ray_kwargs.ray_init.num_cpus=null \
  ++ray_kwargs.ray_init.num_gpus=null ++ray_kwargs.ray_init.include_dashboard=null "$@"
