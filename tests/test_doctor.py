"""`omni-rl doctor` reports which modalities the vLLM server venv can serve, by importing in that venv."""

from __future__ import annotations

import sys

import pytest

from omni_rl.doctor import MODALITIES, main, server_modalities


@pytest.mark.slow
def test_the_server_venv_serves_every_modality_and_a_bare_python_says_why_not(capsys) -> None:
    report = server_modalities()  # the .venv-vllm that `make setup` built
    assert set(report) == set(MODALITIES)
    assert all(v.startswith("yes: ") for v in report.values()), report
    assert "on cpu" in report["text"] and "ops load" in report["image"] and "librosa" in report["audio"]
    bare = server_modalities(sys.executable)  # the main venv: no vllm, no opencv, no librosa
    assert bare["text"] == "no: ModuleNotFoundError: No module named 'vllm'"
    assert bare["video"].startswith("no: ModuleNotFoundError") and "librosa" in bare["audio"]
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(f"serve {m} (server venv)" in out for m in MODALITIES)
