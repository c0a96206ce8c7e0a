#!/usr/bin/env bash
# `make bench`: every benchmark in benchmarks/ with short settings, then one table of headline ratios
# (outputs/bench/summary.md). `bash scripts/bench.sh export group_schemes` runs a subset; see scripts/bench_all.py.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/../recipes" && pwd)"
source "$HERE/lib.sh"  # PYTHON: the project venv
cd "$HERE/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
exec "$PYTHON" scripts/bench_all.py "$@"
