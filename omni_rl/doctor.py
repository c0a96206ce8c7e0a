"""`omni-rl doctor`: what is installed and usable here, so set-up problems show before a long job."""

from __future__ import annotations

import importlib.metadata as md
import subprocess

from rich.console import Console
from rich.table import Table

from omni_rl.serving import vllm_python

PACKAGES = (
    "omni-rl",
    "torch",
    "torchvision",
    "transformers",
    "verl",
    "ray",
    "vllm",
    "flash-attn",
    "datasets",
)


def _version(dist: str) -> str:
    """Installed version of a distribution, or 'not installed'."""
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def _cuda() -> str:
    """CUDA availability as torch sees it."""
    try:
        import torch

        if torch.cuda.is_available():
            return f"yes ({torch.cuda.device_count()} x {torch.cuda.get_device_name(0)})"
        return "no (CPU only)"
    except Exception as exc:  # torch broken: say so instead of crashing the doctor
        return f"torch failed to import: {exc}"


def _server_venv() -> tuple[str, str]:
    """Where the vLLM server venv is and which vllm it holds."""
    py = vllm_python()
    if py is None:
        return "missing (run `make setup`)", "-"
    code = "import importlib.metadata as m; print(m.version('vllm'))"
    res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=120)
    return str(py.parent.parent), res.stdout.strip() or f"broken: {res.stderr.strip()[-200:]}"


def collect() -> dict[str, str]:
    """All facts the doctor reports, as plain strings (also used by eval reports)."""
    facts = {name: _version(name) for name in PACKAGES}
    facts["cuda"] = _cuda()
    facts["vllm server venv"], facts["vllm (server venv)"] = _server_venv()
    return facts


def main(argv: list[str]) -> int:
    """Print the report; exit 1 if a core package is missing."""
    facts = collect()
    table = Table(title="omni-rl doctor")
    table.add_column("component")
    table.add_column("status")
    for key, value in facts.items():
        table.add_row(key, value)
    Console().print(table)
    missing = [p for p in ("torch", "transformers", "verl", "ray") if facts[p] == "not installed"]
    return 1 if missing else 0
