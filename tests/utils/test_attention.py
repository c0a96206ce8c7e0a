"""omni_rl.utils.attention: flash-attn only with a GPU and the package; otherwise sdpa with one warning."""

from __future__ import annotations

import subprocess
import sys

from omni_rl.utils import attention


def test_attention_choice_branches() -> None:
    def no_flash() -> str:
        return "ImportError: No module named 'flash_attn'"

    assert attention.choose(lambda: True, lambda: None)[0] == "flash_attention_2"
    impl, why = attention.choose(lambda: True, no_flash)
    assert impl == "sdpa" and "make setup-flash-attn" in why and "flash_attn" in why
    impl, why = attention.choose(lambda: False, lambda: None)  # flash-attn present but no GPU
    assert impl == "sdpa" and "no CUDA device" in why


def test_attention_on_this_machine_is_sdpa_with_one_warning() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "omni_rl.utils.attention"], capture_output=True, text=True, timeout=300
    )
    assert proc.stdout.strip() == "sdpa"  # no CUDA here
    assert proc.stderr.count("warning") == 1
