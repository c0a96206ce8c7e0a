"""scripts/setup.sh: the GPU branch is provable on a CPU machine. Its plan follows GPU detection, flash-attn
is an optional pinned step, `pip check` failing fails setup, and pip's resolver turns the GPU set into one
consistent set (vLLM that verl 0.9.1 accepts, the pinned torch, no flash-attn)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "scripts" / "setup.sh"
sys.path.insert(0, str(REPO / "scripts"))
import setup_check  # noqa: E402


def _setup(tmp_path: Path, *args: str, gpu: bool, **env: str) -> subprocess.CompletedProcess:
    """scripts/setup.sh with `nvidia-smi` faked on PATH when `gpu` (listing one GPU), else absent."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    if gpu:
        (fake / "nvidia-smi").write_text('#!/bin/sh\necho "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"\n')
        (fake / "nvidia-smi").chmod(0o755)
    no_gpu = [p for p in os.environ["PATH"].split(":") if not (Path(p) / "nvidia-smi").exists()]
    path = ":".join([str(fake), *no_gpu])
    full_env = {**os.environ, "PATH": path, "SETUP_REPORT": str(tmp_path / "resolve.json"), **env}
    return subprocess.run(["bash", str(SETUP), *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip


@pytest.mark.parametrize("gpu", [True, False])
def test_setup_plan_follows_gpu_detection(tmp_path: Path, gpu: bool) -> None:
    proc = _setup(tmp_path, gpu=gpu, SETUP_DRY_RUN="1", SETUP_RESOLVE="0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if "would run:" in ln]
    if gpu:
        assert "GPU machine" in proc.stdout
        # torch pinned to verl[vllm]'s resolution goes in first, alone; then the gpu extra; no flash-attn
        assert lines[0].endswith("pip install torch==2.11.0 torchvision==0.26.0")
        assert lines[1].endswith("pip install -e .[gpu,dev]")
        assert "flash-attn" not in "\n".join(lines) and "make setup-flash-attn" in proc.stdout
        assert "setup_vllm_cpu" not in proc.stdout
    else:
        assert "CPU machine" in proc.stdout
        assert lines[0].endswith("pip install torch==2.14.1 torchvision==0.29.1")
        assert lines[1].endswith("pip install -e .[dev]") and "setup_vllm_cpu.sh" in lines[-2]
    assert lines[-1].endswith("pip check (.venv)")  # the check is part of every plan
    assert "attention:" in proc.stdout


@pytest.mark.parametrize("gpu", [True, False])
def test_flash_attn_is_an_optional_pinned_gpu_step(tmp_path: Path, gpu: bool) -> None:
    proc = _setup(tmp_path, "--flash-attn", gpu=gpu, SETUP_DRY_RUN="1")
    if not gpu:
        assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stdout
        return
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cmd = next(ln for ln in proc.stdout.splitlines() if "would run:" in ln)
    assert "pip install --no-build-isolation flash-attn==2.8.3.post2" in cmd and "MAX_JOBS=" in cmd


def test_make_targets_exist() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "setup-flash-attn:\n\tbash scripts/setup.sh --flash-attn" in makefile
    assert "gpu-smoke:\n\tbash scripts/gpu_smoke.sh" in makefile


@pytest.mark.slow
def test_pip_check_failing_fails_setup(tmp_path: Path) -> None:
    """A real venv with a real broken requirement: `setup.sh --check` exits non-zero and says why."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
    site = next((venv / "lib").glob("python3*/site-packages"))
    dist = site / "needs_missing-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: needs-missing\nVersion: 1.0\nRequires-Dist: omni-rl-no-such-package>=1\n"
    )
    (dist / "RECORD").write_text("")
    proc = _setup(tmp_path, "--check", gpu=False, VENV=str(venv), VLLM_VENV=str(tmp_path / "none"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "needs-missing 1.0 requires omni-rl-no-such-package" in proc.stdout
    assert "FAILED: pip check found conflicts" in proc.stdout


def test_server_venv_check_allows_only_its_documented_deviations(tmp_path: Path) -> None:
    known = (
        "vllm-cpu 0.32.0 requires torchaudio, which is not installed.\n"
        "vllm-cpu 0.32.0 has requirement torch==2.13.0+cpu; platform_machine == \"x86_64\", but you have torch 2.13.0.\n"
    )  # fmt: skip
    (tmp_path / "ok.txt").write_text(known)
    assert setup_check.server_check(tmp_path / "ok.txt") == 0
    (tmp_path / "bad.txt").write_text(
        known + "openai 2.0.0 has requirement httpx<1, but you have httpx 1.2.\n"
    )
    assert setup_check.server_check(tmp_path / "bad.txt") == 1


def _index_reachable() -> bool:
    """Whether pip (with this machine's pip config) reaches the package index."""
    proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "verl"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    return proc.returncode == 0 and "0.9.1" in proc.stdout


@pytest.fixture(scope="module")
def gpu_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """`SETUP_DRY_RUN=1` on a (faked) GPU machine: pip's resolver over the real package index."""
    if not _index_reachable():
        pytest.skip("the package index is not reachable from here: the GPU set cannot be resolved")
    tmp = tmp_path_factory.mktemp("gpu_resolve")
    proc = _setup(tmp, gpu=True, SETUP_DRY_RUN="1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((tmp / "resolve.json").read_text()), proc.stdout


@pytest.mark.slow
def test_gpu_set_resolves_to_one_consistent_set(gpu_report: tuple[dict, str]) -> None:
    report, stdout = gpu_report
    versions = setup_check.resolved(report)
    assert versions["torch"] == "2.11.0" and versions["torchvision"] == "0.26.0"
    assert versions["vllm"] == "0.24.0" and versions["verl"] == "0.9.1"
    assert versions["transformers"].startswith("5.")  # below omni-rl's <5.11 and accepted by vllm 0.24
    assert "flash-attn" not in versions  # a source build: never in the default set
    assert setup_check.inconsistencies(report) == []
    assert "[setup] resolved: torch 2.11.0" in stdout and "flash-attn in set: False" in stdout


@pytest.mark.slow
def test_the_consistency_check_can_fail(gpu_report: tuple[dict, str]) -> None:
    report = copy.deepcopy(gpu_report[0])
    torch = next(i for i in report["install"] if i["metadata"]["name"] == "torch")
    torch["metadata"]["version"] = "2.10.0"  # what an unpinned install on top of vllm could leave
    assert any("vllm requires torch==2.11.0" in p for p in setup_check.inconsistencies(report))
    report["install"] = [i for i in report["install"] if i["metadata"]["name"] != "ray"]
    assert any("which is not in the set" in p and "ray" in p for p in setup_check.inconsistencies(report))


def test_gpu_pins_come_from_pyproject() -> None:
    assert setup_check.gpu_pins() == ["torch==2.11.0", "torchvision==0.26.0"]
