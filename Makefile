# omni-rl developer targets. `make setup` then `make test` is the whole set-up on a fresh machine.
PY ?= python3.11
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
PYTEST_ARGS ?=

.PHONY: setup setup-vllm setup-flash-attn setup-dry-run gpu-smoke test test-fast lint format bench learn clean

setup:
	bash scripts/setup.sh

setup-vllm:
	bash scripts/setup_vllm_cpu.sh

# GPU only, optional: a pinned flash-attn source build against the installed torch (can take an hour).
setup-flash-attn:
	bash scripts/setup.sh --flash-attn

# Install nothing: print the plan and resolve the set with pip's resolver (SETUP_GPU=1 for the GPU branch).
setup-dry-run:
	SETUP_DRY_RUN=1 bash scripts/setup.sh

# CUDA machine: tiny models built locally, 2 GRPO steps of each job (vLLM rollout, GenRM reward), < 10 min.
gpu-smoke:
	bash scripts/gpu_smoke.sh

test:
	bash scripts/test.sh $(PYTEST_ARGS)

test-fast:
	bash scripts/test.sh -m "not server and not ray and not slow" $(PYTEST_ARGS)

lint:
	$(VENV)/bin/ruff check omni_rl reward_fns tests benchmarks data
	$(VENV)/bin/ruff format --check omni_rl reward_fns tests benchmarks data

format:
	$(VENV)/bin/ruff check --fix omni_rl reward_fns tests benchmarks data
	$(VENV)/bin/ruff format omni_rl reward_fns tests benchmarks data

bench:
	bash scripts/bench.sh

# Does the whole chain learn on CPU? SFT -> GenRM GRPO -> eval -> policy GRPO -> best-of-N (report in outputs/learn)
learn:
	$(VENV)/bin/python benchmarks/learn_chain.py --out outputs/learn $(LEARN_ARGS)

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .ruff_cache
