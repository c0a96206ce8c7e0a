#!/usr/bin/env bash
# Run the test suite offline. Extra arguments go to pytest. Exit code 5 (no tests collected) is a failure
# for the full suite, because a suite that ran nothing proves nothing.
#
# Two pytest-xdist workers (PYTEST_WORKERS=N to change, 0 for none): much of the suite waits on servers and
# verl's Ray workers, so a second worker fills the idle core. `--dist loadscope` with the scheduler in
# tests/conftest.py: the session's vLLM servers and Ray head live on one worker (started once), every other
# test module is one unit (its module-scoped verl runs happen once).
# One OpenMP thread per process: with two workers (and verl's Ray actors, servers) sharing 2 cores, more threads
# only spin against each other. benchmarks/bench_omp_threads.py, verl's SFT step beside one busy process:
# 2.75 s with 2 threads, 0.47 s with 1 (5.9x); on a quiet machine 2 threads win (0.38 vs 0.48 s), so the
# recipes themselves leave OMP_NUM_THREADS alone.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
export PYTHONUNBUFFERED=1
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
WORKERS="${PYTEST_WORKERS:-2}"
XDIST=()
if [[ "$WORKERS" != 0 ]]; then XDIST=(-n "$WORKERS" --dist loadscope); fi
.venv/bin/python -m pytest -ra --durations=25 ${XDIST[@]+"${XDIST[@]}"} "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "[test] pytest collected no tests (exit 5)" >&2; fi
exit "$rc"
