"""`omni-rl doctor`: what is installed and usable here, so set-up problems show before a long job."""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
from pathlib import Path

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


MODALITIES = ("text", "image", "video", "audio")
# Run inside the server venv: each modality imports exactly what vLLM needs to serve it, so a missing or
# mismatched package (torchvision whose C ops do not load beside this torch, no librosa) names itself.
_MODALITY_CHECK = r"""
import json, sys
def text():
    import vllm
    from vllm.platforms import current_platform
    return f"vllm {vllm.__version__} on {current_platform.device_type}"
def image():
    import torch, torchvision
    torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)  # the C ops the image processors need
    import vllm.model_executor.models.qwen2_5_vl  # noqa: F401
    return f"torchvision {torchvision.__version__} ops load; Qwen2.5-VL importable"
def video():
    import cv2  # vLLM's default (opencv) video loader
    from vllm.multimodal.media.video import VideoMediaIO  # noqa: F401
    image()
    return f"opencv {cv2.__version__}; vLLM video loader importable"
def audio():
    import librosa, soundfile
    import vllm.model_executor.models.qwen2_5_omni_thinker  # noqa: F401
    return f"librosa {librosa.__version__}, soundfile {soundfile.__version__}; Qwen2.5-Omni thinker importable"
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = "yes: " + globals()[name]()
    except Exception as exc:  # report, never crash: the doctor's job is to say what is missing
        out[name] = f"no: {type(exc).__name__}: {exc}"[:300]
print(json.dumps(out))
"""


def server_modalities(python: str | Path | None = None) -> dict[str, str]:
    """Which modalities the vLLM server venv can serve ("yes: ..." / "no: <reason>"), by importing in it."""
    py = python or vllm_python()
    if py is None:
        return dict.fromkeys(MODALITIES, "no: vLLM server venv missing (run `make setup`)")
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_LOGGING_LEVEL": "ERROR",
        "PATH": "/usr/bin:/bin",
    }
    res = subprocess.run([str(py), "-c", _MODALITY_CHECK, *MODALITIES], capture_output=True, text=True,
                         timeout=300, env=env)  # fmt: skip
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        return dict.fromkeys(MODALITIES, f"no: server venv python failed: {res.stderr.strip()[-200:]}")
    return json.loads(lines[-1])


def collect() -> dict[str, str]:
    """All facts the doctor reports, as plain strings (also used by eval reports)."""
    facts = {name: _version(name) for name in PACKAGES}
    facts["cuda"] = _cuda()
    facts["vllm server venv"], facts["vllm (server venv)"] = _server_venv()
    return facts


def main(argv: list[str]) -> int:
    """Print the report (packages, CUDA, the server venv and the modalities it can serve); exit 1 if a core
    package is missing."""
    facts = collect()
    facts.update({f"serve {m} (server venv)": v for m, v in server_modalities().items()})
    table = Table(title="omni-rl doctor")
    table.add_column("component")
    table.add_column("status")
    for key, value in facts.items():
        table.add_row(key, value)
    Console().print(table)
    missing = [p for p in ("torch", "transformers", "verl", "ray") if facts[p] == "not installed"]
    return 1 if missing else 0
